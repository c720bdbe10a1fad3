// SQLite rows of referrers lists: the answer last served for (upstream, repo, subject, artifactType), and when it was checked.
import type Database from 'better-sqlite3';
import type { Digest } from '../oci/digest.js';

/** Where a list came from: the upstream's referrers API, its referrers tag (API 404), or neither (empty index). */
export type ReferrersSource = 'api' | 'fallback-tag' | 'empty';

export interface ReferrersRow {
  body: Buffer;
  source: ReferrersSource;
  /** OCI-Filters-Applied of this answer, '' when none. */
  filters: string;
  checkedAt: number;
}

export class ReferrersStore {
  private readonly q;

  constructor(db: Database.Database) {
    this.q = {
      get: db.prepare<[string, string, string, string], { body: Buffer; source: string; filters: string; checked_at: number }>(
        'SELECT body, source, filters, checked_at FROM referrers WHERE upstream = ? AND repo = ? AND subject = ? AND artifact_type = ?',
      ),
      put: db.prepare(
        `INSERT INTO referrers (upstream, repo, subject, artifact_type, body, source, filters, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(upstream, repo, subject, artifact_type) DO UPDATE SET body = excluded.body, source = excluded.source,
         filters = excluded.filters, checked_at = excluded.checked_at`,
      ),
    };
  }

  /** `artifactType` '' is the unfiltered list. */
  get(upstream: string, repo: string, subject: Digest, artifactType: string): ReferrersRow | undefined {
    const r = this.q.get.get(upstream, repo, subject, artifactType);
    return r ? { body: r.body, source: r.source as ReferrersSource, filters: r.filters, checkedAt: r.checked_at } : undefined;
  }

  put(upstream: string, repo: string, subject: Digest, artifactType: string, row: ReferrersRow): void {
    this.q.put.run(upstream, repo, subject, artifactType, row.body, row.source, row.filters, row.checkedAt);
  }
}
