// SQLite metadata (better-sqlite3, WAL): blob rows, repository links, manifests, tags. Synchronous and prepared.
import { chmodSync, closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { MIGRATIONS } from './schema.js';

export interface ManifestRow {
  digest: Digest;
  mediaType: string;
  body: Buffer;
}
/** The holder name for bytes fetched and verified from an allowed foreign URL (not from any registry). */
export const FOREIGN_HOLDER = ':foreign';

/**
 * Does a manifest's descriptor prove that its registry holds the digest in that repository? Only an ordinary one:
 * registries check those exist on push, never foreign / urls-carrying layers, and a subject need not exist at all.
 */
export function provesHeld(d: Pick<Descriptor, 'foreign' | 'urls' | 'subject'>): boolean {
  return !d.subject && !d.foreign && d.urls.length === 0;
}

export interface TagRow {
  digest: Digest;
  checkedAt: number;
}

export class Metadata {
  readonly db: Database.Database;
  private readonly q;
  private readonly knownLinks = new LRUCache<string, true>({ max: 100_000 });
  private readonly knownHolders = new LRUCache<string, true>({ max: 100_000 });

  constructor(
    path: string,
    private readonly now: () => number = Date.now,
  ) {
    // Created owner-only before SQLite opens it: its -wal and -shm files copy the database file's mode.
    try {
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    } catch {
      // read-only data dir: SQLite says what it can do with the file
    }
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    // Several processes (serve + CLI commands) share one data dir: wait for a lock instead of failing.
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    const db = this.db;
    this.q = {
      blobSize: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
      putBlob: db.prepare(
        'INSERT INTO blobs (digest, size, created_at, last_access) VALUES (?, ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET last_access = excluded.last_access',
      ),
      delBlob: db.prepare('DELETE FROM blobs WHERE digest = ?'),
      isLinked: db.prepare<[string, string, string], { one: number }>('SELECT 1 AS one FROM links WHERE upstream = ? AND repo = ? AND digest = ?'),
      link: db.prepare('INSERT OR IGNORE INTO links (upstream, repo, digest) VALUES (?, ?, ?)'),
      isHolder: db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM holders WHERE digest = ? AND upstream = ?'),
      addHolder: db.prepare('INSERT OR IGNORE INTO holders (digest, upstream) VALUES (?, ?)'),
      getManifest: db.prepare<[string], { media_type: string; body: Buffer }>('SELECT media_type, body FROM manifests WHERE digest = ?'),
      putRef: db.prepare('INSERT OR IGNORE INTO manifest_refs (manifest, child) VALUES (?, ?)'),
      putManifest: db.prepare(
        'INSERT INTO manifests (digest, media_type, body, created_at, last_access) VALUES (?, ?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING',
      ),
      getTag: db.prepare<[string, string, string], { digest: string; checked_at: number }>(
        'SELECT digest, checked_at FROM tags WHERE upstream = ? AND repo = ? AND tag = ?',
      ),
      putTag: db.prepare(
        'INSERT INTO tags (upstream, repo, tag, digest, checked_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(upstream, repo, tag) DO UPDATE SET digest = excluded.digest, checked_at = excluded.checked_at',
      ),
      delTag: db.prepare('DELETE FROM tags WHERE upstream = ? AND repo = ? AND tag = ?'),
      listTags: db.prepare<[string, string], { tag: string }>('SELECT tag FROM tags WHERE upstream = ? AND repo = ? ORDER BY tag'),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  blobSize(digest: Digest): number | undefined {
    return this.q.blobSize.get(digest)?.size;
  }

  putBlob(digest: Digest, size: number): void {
    const t = this.now();
    this.q.putBlob.run(digest, size, t, t);
  }

  deleteBlob(digest: Digest): void {
    this.q.delBlob.run(digest);
  }

  isLinked(upstream: string, repo: string, digest: Digest): boolean {
    // Links are only ever added on the request path, so a positive answer can be remembered.
    const key = `${upstream}|${repo}|${digest}`;
    if (this.knownLinks.has(key)) return true;
    const linked = this.q.isLinked.get(upstream, repo, digest) !== undefined;
    if (linked) this.knownLinks.set(key, true);
    return linked;
  }

  link(upstream: string, repo: string, digests: Iterable<Digest>): void {
    this.db.transaction(() => {
      for (const d of digests) this.q.link.run(upstream, repo, d);
    })();
  }

  /** Did `upstream` itself deliver these exact bytes (verified)? Only ever added, so positive answers are remembered. */
  isHolder(upstream: string, digest: Digest): boolean {
    const key = `${upstream}|${digest}`;
    if (this.knownHolders.has(key)) return true;
    const held = this.q.isHolder.get(digest, upstream) !== undefined;
    if (held) this.knownHolders.set(key, true);
    return held;
  }

  addHolder(upstream: string, digest: Digest): void {
    this.q.addHolder.run(digest, upstream);
  }

  getManifest(digest: Digest): ManifestRow | undefined {
    const r = this.q.getManifest.get(digest);
    return r ? { digest, mediaType: r.media_type, body: r.body } : undefined;
  }

  /**
   * Stores a verified manifest that `upstream` delivered for `repo` (so it holds it), links it to the repository,
   * and links what it references only where that proves the registry holds it (provesHeld), atomically.
   * Children (config, layers, index entries) are kept while this manifest is kept; a subject is neither.
   */
  putManifest(upstream: string, repo: string, m: ManifestRow, references: Iterable<Pick<Descriptor, 'digest' | 'foreign' | 'urls' | 'subject'>>): void {
    const t = this.now();
    this.db.transaction(() => {
      this.q.putManifest.run(m.digest, m.mediaType, m.body, t, t);
      this.q.link.run(upstream, repo, m.digest);
      this.q.addHolder.run(m.digest, upstream);
      for (const r of references) {
        if (provesHeld(r)) this.q.link.run(upstream, repo, r.digest);
        if (!r.subject) this.q.putRef.run(m.digest, r.digest);
      }
    })();
  }

  /** Writes batched access times (one transaction, not one write per request). */
  touch(times: Iterable<[Digest, number]>): void {
    const blob = this.db.prepare('UPDATE blobs SET last_access = ? WHERE digest = ? AND last_access < ?');
    const manifest = this.db.prepare('UPDATE manifests SET last_access = ? WHERE digest = ? AND last_access < ?');
    this.db.transaction(() => {
      for (const [d, t] of times) {
        if (blob.run(t, d, t).changes === 0) manifest.run(t, d, t);
      }
    })();
  }

  getTag(upstream: string, repo: string, tag: string): TagRow | undefined {
    const r = this.q.getTag.get(upstream, repo, tag);
    return r ? { digest: r.digest as Digest, checkedAt: r.checked_at } : undefined;
  }

  putTag(upstream: string, repo: string, tag: string, digest: Digest): void {
    this.q.putTag.run(upstream, repo, tag, digest, this.now());
  }

  deleteTag(upstream: string, repo: string, tag: string): void {
    this.q.delTag.run(upstream, repo, tag);
  }

  listTags(upstream: string, repo: string): string[] {
    return this.q.listTags.all(upstream, repo).map((r) => r.tag);
  }

  /** Blob count and bytes (for metrics and readiness). */
  blobTotals(): { objects: number; bytes: number } {
    const r = this.db.prepare<[], { n: number; b: number }>('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM blobs').get()!;
    return { objects: r.n, bytes: r.b };
  }

  close(): void {
    this.db.close();
  }
}
