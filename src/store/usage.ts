// Storage accounting in SQLite: usage totals, eviction candidates and deletions, pins and the pinned closure, du.
import type Database from 'better-sqlite3';
import type { Digest } from '../oci/digest.js';

export interface Candidate {
  digest: Digest;
  size: number;
}
export interface Pin {
  upstream: string;
  repo: string;
  reference: string;
  digest: Digest;
  createdAt: number;
}
export interface RepoUsage {
  upstream: string;
  repo: string;
  blobs: number;
  bytes: number;
}

export class Usage {
  constructor(private readonly db: Database.Database) {}

  totals(): { blobBytes: number; manifestBytes: number; blobs: number; manifests: number } {
    const b = this.db.prepare<[], { n: number; s: number }>('SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS s FROM blobs').get()!;
    const m = this.db.prepare<[], { n: number; s: number }>('SELECT COUNT(*) AS n, COALESCE(SUM(length(body)), 0) AS s FROM manifests').get()!;
    return { blobBytes: b.s, blobs: b.n, manifestBytes: m.s, manifests: m.n };
  }

  /** Every digest reachable from a pin: the pinned manifests and, transitively, what they reference. */
  pinnedClosure(): Set<string> {
    const rows = this.db
      .prepare<[], { d: string }>(`
      WITH RECURSIVE kept(d) AS (
        SELECT digest FROM pins
        UNION SELECT r.child FROM manifest_refs r JOIN kept ON r.manifest = kept.d
      ) SELECT d FROM kept`)
      .all();
    return new Set(rows.map((r) => r.d));
  }

  /** Cached foreign/non-distributable layers (the foreign-layer table says which digests are). */
  cachedForeignLayers(): Set<string> {
    const rows = this.db
      .prepare<[], { digest: string }>('SELECT f.digest FROM foreign_layers f JOIN blobs b ON b.digest = f.digest WHERE f.is_foreign = 1')
      .all();
    return new Set(rows.map((r) => r.digest));
  }

  /** Blobs no stored manifest references, least recently used first. */
  unreferencedBlobs(): Candidate[] {
    return this.db
      .prepare<[], Candidate>(`
      SELECT digest, size FROM blobs b
      WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = b.digest)
      ORDER BY last_access`)
      .all();
  }

  /** Manifests no other stored manifest references (roots: images and indexes), least recently used first. */
  rootManifests(): Candidate[] {
    return this.db
      .prepare<[], Candidate>(`
      SELECT digest, length(body) AS size FROM manifests m
      WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = m.digest)
      ORDER BY last_access`)
      .all();
  }

  deleteBlob(digest: Digest): void {
    this.db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest);
  }

  /**
   * Removes a manifest with its tag mappings and its references, so nothing points at it. Repository links stay:
   * "this digest belongs to that repository" remains true, and the next pull fetches it again from there.
   */
  deleteManifest(digest: Digest): void {
    this.db.prepare('DELETE FROM manifests WHERE digest = ?').run(digest);
    this.db.prepare('DELETE FROM manifest_refs WHERE manifest = ?').run(digest);
    this.db.prepare('DELETE FROM tags WHERE digest = ?').run(digest);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  pin(p: Omit<Pin, 'createdAt'>, now: number): void {
    this.db
      .prepare(
        'INSERT INTO pins (upstream, repo, reference, digest, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (upstream, repo, reference) DO UPDATE SET digest = excluded.digest',
      )
      .run(p.upstream, p.repo, p.reference, p.digest, now);
  }

  unpin(upstream: string, repo: string, reference: string): boolean {
    return this.db.prepare('DELETE FROM pins WHERE upstream = ? AND repo = ? AND reference = ?').run(upstream, repo, reference).changes > 0;
  }

  pins(): Pin[] {
    return this.db.prepare<[], Pin>('SELECT upstream, repo, reference, digest, created_at AS createdAt FROM pins ORDER BY upstream, repo, reference').all();
  }

  /** What a manifest is known as: its tags (`upstream/repo:tag`), else the repositories it is in (`upstream/repo@digest`). */
  imageNames(digest: Digest): string[] {
    const tags = this.db
      .prepare<[string], { n: string }>("SELECT upstream || '/' || repo || ':' || tag AS n FROM tags WHERE digest = ? ORDER BY upstream, repo, tag")
      .all(digest);
    if (tags.length > 0) return tags.map((t) => t.n);
    return this.repositories(digest).map((r) => `${r}@${digest}`);
  }

  /** The repositories (`upstream/repo`) a digest is known to belong to. */
  repositories(digest: Digest): string[] {
    return this.db
      .prepare<[string], { n: string }>("SELECT upstream || '/' || repo AS n FROM links WHERE digest = ? ORDER BY upstream, repo")
      .all(digest)
      .map((r) => r.n);
  }

  /** The digests a stored manifest references (child manifests, config, layers). */
  children(digest: Digest): Digest[] {
    return this.db
      .prepare<[string], { c: Digest }>('SELECT child AS c FROM manifest_refs WHERE manifest = ?')
      .all(digest)
      .map((r) => r.c);
  }

  /** Bytes of cached blobs linked to each repository (a blob shared by several repositories counts in each). */
  byRepository(): RepoUsage[] {
    return this.db
      .prepare<[], RepoUsage>(`
      SELECT l.upstream AS upstream, l.repo AS repo, COUNT(*) AS blobs, COALESCE(SUM(b.size), 0) AS bytes
      FROM links l JOIN blobs b ON b.digest = l.digest
      GROUP BY l.upstream, l.repo ORDER BY bytes DESC`)
      .all();
  }
}
