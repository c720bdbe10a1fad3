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

/** Rows kept at most (each is one subject and filter a client asked about): the oldest-checked go first. */
export const MAX_REFERRERS_ROWS = 50_000;
const PRUNE_EVERY = 256;

export class ReferrersStore {
  private readonly q;
  private puts = 0;

  constructor(
    db: Database.Database,
    private readonly maxRows = MAX_REFERRERS_ROWS,
  ) {
    this.q = {
      get: db.prepare<[string, string, string, string], { body: Buffer; source: string; filters: string; checked_at: number }>(
        'SELECT body, source, filters, checked_at FROM referrers WHERE upstream = ? AND repo = ? AND subject = ? AND artifact_type = ?',
      ),
      put: db.prepare(
        `INSERT INTO referrers (upstream, repo, subject, artifact_type, body, source, filters, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(upstream, repo, subject, artifact_type) DO UPDATE SET body = excluded.body, source = excluded.source,
         filters = excluded.filters, checked_at = excluded.checked_at`,
      ),
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM referrers'),
      prune: db.prepare(
        `DELETE FROM referrers WHERE (upstream, repo, subject, artifact_type) IN
         (SELECT upstream, repo, subject, artifact_type FROM referrers ORDER BY checked_at LIMIT ?)`,
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
    // Clients choose the subjects and filters: the table stays bounded (checked every PRUNE_EVERY writes).
    if (++this.puts % PRUNE_EVERY === 0 || this.maxRows < PRUNE_EVERY) {
      const over = this.q.count.get()!.n - this.maxRows;
      if (over > 0) this.q.prune.run(over);
    }
  }
}
