// A temp data dir for eviction tests: real CAS files and SQLite rows, an injected clock, and snapshots of what is stored.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { AccessTracker } from '../../src/cache/access.ts';
import { Eviction, type SweepResult } from '../../src/cache/eviction.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { parseManifest } from '../../src/oci/manifest.ts';
import { BlobStore } from '../../src/store/blob-store.ts';
import { Metadata } from '../../src/store/metadata.ts';
import { Usage } from '../../src/store/usage.ts';
import { makeTempDir, type TempDir } from './tmp.ts';

export const UP = 'registry.test';
const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

export interface Blob {
  digest: Digest;
  size: number;
}
export interface Image extends Blob {
  config: Blob;
  layers: Blob[];
}

/** A data dir with real CAS files and SQLite rows, an injected clock, and an eviction over it. */
export class Fixture {
  now = 1_000_000;
  readonly tmp: TempDir = makeTempDir('stevedore-evict-');
  readonly store = new BlobStore(this.tmp.path);
  readonly meta = new Metadata(this.store.paths.db, () => this.now);
  readonly usage = new Usage(this.meta.db);
  readonly access = new AccessTracker(this.meta, () => this.now);
  readonly inUse = new Set<string>();
  private seq = 0;

  eviction(maxSize?: number, log: pino.Logger = pino({ level: 'silent' })): Eviction {
    return new Eviction({
      meta: this.meta,
      usage: this.usage,
      store: this.store,
      access: this.access,
      log,
      maxSize,
      inUse: (d) => this.inUse.has(d),
    });
  }

  /** Writes a verified file into the CAS and its row, as a fill does; each call is one tick later (LRU order). */
  async blob(bytes: Buffer = randomBytes(1000 + this.seq * 10)): Promise<Blob> {
    const digest = digestOf(bytes);
    const { path: temp, handle } = await this.store.createTemp();
    await handle.write(bytes, 0, bytes.length, 0);
    await this.store.commit(temp, handle, digest);
    await handle.close();
    this.meta.putBlob(digest, bytes.length);
    this.now++;
    return { digest, size: bytes.length };
  }

  manifest(repo: string, tags: string[], doc: object, mediaType: string): Blob {
    const body = Buffer.from(JSON.stringify(doc));
    const digest = digestOf(body);
    this.meta.putManifest(UP, repo, { digest, mediaType, body }, parseManifest(body, mediaType).descriptors);
    for (const t of tags) this.meta.putTag(UP, repo, t, digest);
    this.now++;
    return { digest, size: body.length };
  }

  async image(repo: string, tags: string[], nLayers: number, shared: Blob[] = []): Promise<Image> {
    const config = await this.blob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seq: this.seq++ })));
    const layers = [...shared];
    for (let i = 0; i < nLayers; i++) layers.push(await this.blob());
    const desc = (b: Blob, mediaType: string) => ({ mediaType, digest: b.digest, size: b.size });
    const m = this.manifest(
      repo,
      tags,
      { schemaVersion: 2, mediaType: MT.manifest, config: desc(config, MT.config), layers: layers.map((l) => desc(l, MT.layer)) },
      MT.manifest,
    );
    return { ...m, config, layers };
  }

  index(repo: string, tags: string[], children: Image[]): Blob {
    return this.manifest(
      repo,
      tags,
      {
        schemaVersion: 2,
        mediaType: MT.index,
        manifests: children.map((c) => ({ mediaType: MT.manifest, digest: c.digest, size: c.size, platform: { os: 'linux', architecture: 'amd64' } })),
      },
      MT.index,
    );
  }

  onDisk(b: Blob): boolean {
    return existsSync(this.store.paths.blob(b.digest));
  }

  total(): number {
    const t = this.usage.totals();
    return t.blobBytes + t.manifestBytes;
  }
}

const fixtures: Fixture[] = [];
export function fixture(): Fixture {
  const f = new Fixture();
  fixtures.push(f);
  return f;
}
after(async () => {
  for (const f of fixtures) {
    if (f.meta.db.open) f.meta.close();
    await f.tmp.cleanup();
  }
});

export const digests = (r: SweepResult) => new Set(r.evicted.map((e) => e.digest));
export const blobsOf = (i: Image): Blob[] => [i.config, ...i.layers];

/** Every row of every eviction-relevant table and every CAS file with its hash: equal snapshots = nothing changed. */
export function snapshot(dir: string): unknown {
  const db = new Database(path.join(dir, 'metadata.db'), { readonly: true });
  try {
    const rows = Object.fromEntries(
      ['blobs', 'links', 'manifests', 'tags', 'manifest_refs', 'pins'].map((t) => [
        t,
        db
          .prepare(`SELECT * FROM ${t}`)
          .all()
          .map((r) => JSON.stringify(r))
          .sort(),
      ]),
    );
    const files = readdirSync(path.join(dir, 'blobs'), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map(
        (e) =>
          `${e.name}=${createHash('sha256')
            .update(readFileSync(path.join(e.parentPath, e.name)))
            .digest('hex')}`,
      )
      .sort();
    return { rows, files };
  } finally {
    db.close();
  }
}
