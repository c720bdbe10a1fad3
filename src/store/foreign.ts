// SQLite access for foreign layers: recorded descriptors, where they were seen, operator mirrors, per-URL health.
import type Database from 'better-sqlite3';
import type { Digest } from '../oci/digest.js';

export type ForeignStatus = 'unresolved' | 'redirectable' | 'fetchable' | 'cached' | 'unavailable' | 'denied';
export const FOREIGN_STATUSES: readonly ForeignStatus[] = ['unresolved', 'redirectable', 'fetchable', 'cached', 'unavailable', 'denied'];

export function isForeignStatus(value: string): value is ForeignStatus {
  return (FOREIGN_STATUSES as readonly string[]).includes(value);
}

export interface ForeignLayerRow {
  digest: Digest;
  size: number;
  mediaType: string;
  /** Foreign / non-distributable media type (vs. an ordinary layer that merely carries urls). */
  foreign: boolean;
  urls: string[];
  /** 'cached' whenever the blob is in the CAS, whatever was last recorded (eviction may remove it again). */
  status: ForeignStatus;
  lastError: string | null;
  firstSeen: number;
  lastSeen: number;
}

export interface RecordedDescriptor {
  digest: Digest;
  size: number;
  mediaType: string;
  urls: string[];
  foreign: boolean;
}

export interface UrlHealth {
  url: string;
  lastSuccess: number | null;
  lastFailure: number | null;
  failures: number;
  lastError: string | null;
}

interface LayerDbRow {
  digest: string;
  size: number;
  media_type: string;
  is_foreign: number;
  urls: string;
  status: string;
  last_error: string | null;
  first_seen: number;
  last_seen: number;
  cached: number;
}

const SELECT_LAYER = `SELECT f.*, (b.digest IS NOT NULL) AS cached FROM foreign_layers f LEFT JOIN blobs b ON b.digest = f.digest`;

function toRow(r: LayerDbRow): ForeignLayerRow {
  const stored = r.status as ForeignStatus;
  const status: ForeignStatus = r.cached ? 'cached' : stored === 'cached' ? 'unresolved' : stored;
  return {
    digest: r.digest as Digest,
    size: r.size,
    mediaType: r.media_type,
    foreign: r.is_foreign === 1,
    urls: JSON.parse(r.urls) as string[],
    status,
    lastError: r.last_error,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
}

export class ForeignStore {
  private readonly q;

  constructor(private readonly db: Database.Database) {
    this.q = {
      get: db.prepare<[string], LayerDbRow>(`${SELECT_LAYER} WHERE f.digest = ?`),
      all: db.prepare<[], LayerDbRow>(`${SELECT_LAYER} ORDER BY f.last_seen DESC, f.digest`),
      urls: db.prepare<[string], { urls: string }>('SELECT urls FROM foreign_layers WHERE digest = ?'),
      insert: db.prepare('INSERT INTO foreign_layers (digest, size, media_type, is_foreign, urls, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      seen: db.prepare('UPDATE foreign_layers SET urls = ?, is_foreign = MAX(is_foreign, ?), last_seen = ? WHERE digest = ?'),
      addRepo: db.prepare('INSERT OR IGNORE INTO foreign_repos (digest, upstream, repo) VALUES (?, ?, ?)'),
      seenIn: db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM foreign_repos WHERE digest = ? AND upstream = ? AND repo = ?'),
      repos: db.prepare<[string], { upstream: string; repo: string }>('SELECT upstream, repo FROM foreign_repos WHERE digest = ? ORDER BY upstream, repo'),
      status: db.prepare('UPDATE foreign_layers SET status = ?, last_error = ? WHERE digest = ?'),
      mirrors: db.prepare<[string], { url: string }>('SELECT url FROM foreign_mirrors WHERE digest = ? ORDER BY id'),
      addMirror: db.prepare('INSERT OR IGNORE INTO foreign_mirrors (digest, url, added_at) VALUES (?, ?, ?)'),
      delMirror: db.prepare('DELETE FROM foreign_mirrors WHERE digest = ? AND url = ?'),
      health: db.prepare<[string], { url: string; last_success: number | null; last_failure: number | null; failures: number; last_error: string | null }>(
        'SELECT * FROM foreign_url_health WHERE url = ?',
      ),
      ok: db.prepare(`INSERT INTO foreign_url_health (url, last_success, failures) VALUES (?, ?, 0)
        ON CONFLICT(url) DO UPDATE SET last_success = excluded.last_success, failures = 0`),
      fail: db.prepare(`INSERT INTO foreign_url_health (url, last_failure, failures, last_error) VALUES (?, ?, 1, ?)
        ON CONFLICT(url) DO UPDATE SET last_failure = excluded.last_failure, failures = failures + 1, last_error = excluded.last_error`),
    };
  }

  /** Records descriptors seen in upstream/repo's manifest: URLs merged in order of first appearance. */
  record(upstream: string, repo: string, descriptors: readonly RecordedDescriptor[], now: number): void {
    this.db.transaction(() => {
      for (const d of descriptors) {
        const old = this.q.urls.get(d.digest);
        if (!old) this.q.insert.run(d.digest, d.size, d.mediaType, d.foreign ? 1 : 0, JSON.stringify(d.urls), now, now);
        else {
          const urls = [...new Set([...(JSON.parse(old.urls) as string[]), ...d.urls])];
          this.q.seen.run(JSON.stringify(urls), d.foreign ? 1 : 0, now, d.digest);
        }
        this.q.addRepo.run(d.digest, upstream, repo);
      }
    })();
  }

  get(digest: Digest): ForeignLayerRow | undefined {
    const r = this.q.get.get(digest);
    return r ? toRow(r) : undefined;
  }

  list(status?: ForeignStatus): ForeignLayerRow[] {
    const rows = this.q.all.all().map(toRow);
    return status ? rows.filter((r) => r.status === status) : rows;
  }

  seenIn(digest: Digest, upstream: string, repo: string): boolean {
    return this.q.seenIn.get(digest, upstream, repo) !== undefined;
  }

  repos(digest: Digest): { upstream: string; repo: string }[] {
    return this.q.repos.all(digest);
  }

  setStatus(digest: Digest, status: ForeignStatus, error: string | null): void {
    this.q.status.run(status, error, digest);
  }

  /** Operator mirrors for one digest, or with digest '' the prefix/template mirrors for every digest. */
  mirrors(digest: Digest | ''): string[] {
    return this.q.mirrors.all(digest).map((r) => r.url);
  }

  addMirror(digest: Digest | '', url: string, now: number): boolean {
    return this.q.addMirror.run(digest, url, now).changes > 0;
  }

  removeMirror(digest: Digest | '', url: string): boolean {
    return this.q.delMirror.run(digest, url).changes > 0;
  }

  health(url: string): UrlHealth {
    const r = this.q.health.get(url);
    return r
      ? { url, lastSuccess: r.last_success, lastFailure: r.last_failure, failures: r.failures, lastError: r.last_error }
      : { url, lastSuccess: null, lastFailure: null, failures: 0, lastError: null };
  }

  markSuccess(url: string, now: number): void {
    this.q.ok.run(url, now);
  }

  markFailure(url: string, error: string, now: number): void {
    this.q.fail.run(url, now, error);
  }
}
