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
/**
 * Bytes of lists kept at most, likewise. They live in metadata.db, outside --max-size: without this an upstream
 * answering ~4 MiB lists filled the disk by way of 50,000 rows (the audit: 80 lists of 3 MB, 236 MB of metadata.db
 * under --max-size 100MB). Real lists are a few kB (a signature or SBOM descriptor is ~300 bytes).
 */
export const MAX_REFERRERS_BYTES = 64 << 20;
const PRUNE_EVERY = 256;

export class ReferrersStore {
  private readonly q;
  private puts = 0;
  /** Bytes written since the byte bound was last checked (starts due: the first write checks). */
  private unchecked: number;

  constructor(
    db: Database.Database,
    private readonly maxRows = MAX_REFERRERS_ROWS,
    private readonly maxBytes = MAX_REFERRERS_BYTES,
  ) {
    this.unchecked = maxBytes;
    this.q = {
      get: db.prepare<[string, string, string, string], { body: Buffer; source: string; filters: string; checked_at: number }>(
        'SELECT body, source, filters, checked_at FROM referrers WHERE upstream = ? AND repo = ? AND subject = ? AND artifact_type = ?',
      ),
      put: db.prepare(
        `INSERT INTO referrers (upstream, repo, subject, artifact_type, body, source, filters, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(upstream, repo, subject, artifact_type) DO UPDATE SET body = excluded.body, source = excluded.source,
         filters = excluded.filters, checked_at = excluded.checked_at`,
      ),
      del: db.prepare('DELETE FROM referrers WHERE upstream = ? AND repo = ? AND subject = ? AND artifact_type = ?'),
      count: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM referrers'),
      prune: db.prepare(
        `DELETE FROM referrers WHERE (upstream, repo, subject, artifact_type) IN
         (SELECT upstream, repo, subject, artifact_type FROM referrers ORDER BY checked_at LIMIT ?)`,
      ),
      // length() of a blob reads no blob pages: a scan of the rows, ~15 ms for 50,000.
      size: db.prepare<[], { n: number; bytes: number }>('SELECT COUNT(*) AS n, COALESCE(SUM(length(body)), 0) AS bytes FROM referrers'),
    };
  }

  /** `artifactType` '' is the unfiltered list. */
  get(upstream: string, repo: string, subject: Digest, artifactType: string): ReferrersRow | undefined {
    const r = this.q.get.get(upstream, repo, subject, artifactType);
    return r ? { body: r.body, source: r.source as ReferrersSource, filters: r.filters, checkedAt: r.checked_at } : undefined;
  }

  put(upstream: string, repo: string, subject: Digest, artifactType: string, row: ReferrersRow): void {
    // Larger than the whole bound (not with the 4 MiB cap on a list): not kept (nor an older answer), and nothing
    // pushed out for it.
    if (row.body.length > this.maxBytes) {
      this.q.del.run(upstream, repo, subject, artifactType);
      return;
    }
    this.q.put.run(upstream, repo, subject, artifactType, row.body, row.source, row.filters, row.checkedAt);
    // Checked once every maxBytes/16 written, so the table exceeds the bound by at most that much meanwhile.
    this.unchecked += row.body.length;
    if (this.unchecked >= this.maxBytes / 16) {
      this.unchecked = 0;
      this.pruneBytes();
    }
    // Clients choose the subjects and filters: the table stays bounded (checked every PRUNE_EVERY writes).
    if (++this.puts % PRUNE_EVERY === 0 || this.maxRows < PRUNE_EVERY) {
      const over = this.q.count.get()!.n - this.maxRows;
      if (over > 0) this.q.prune.run(over);
    }
  }

  /** Past maxBytes, the oldest-checked rows go: each round as many as hold the excess on average (at least one). */
  private pruneBytes(): void {
    for (let round = 0; round < 8; round++) {
      const { n, bytes } = this.q.size.get()!;
      if (bytes <= this.maxBytes || n === 0) return;
      this.q.prune.run(Math.ceil(((bytes - this.maxBytes) / bytes) * n));
    }
  }
}
