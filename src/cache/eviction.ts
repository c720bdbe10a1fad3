// One periodic sweep keeps the store within its budget: least recently used first; pins, kept manifests' blobs
// and blobs being streamed or filled right now are never evicted. Recency comes from access.ts's batched times.
import { statfs } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Metadata } from '../store/metadata.js';
import type { Usage } from '../store/usage.js';
import type { AccessTracker } from './access.js';

export interface SweepResult {
  needed: number;
  freedBytes: number;
  /**
   * What went, each with the images it belonged to (`upstream/repo:tag`, or `upstream/repo` for a stray blob).
   * kind 'partial': an interrupted download in partial/ (digest is its file name there).
   */
  evicted: { kind: 'blob' | 'manifest' | 'partial'; digest: Digest; size: number; names: string[] }[];
  /** True when the budget could not be met: everything left is pinned, kept or in use. */
  short: boolean;
}

export interface EvictionDeps {
  meta: Metadata;
  usage: Usage;
  store: BlobStore;
  access: AccessTracker;
  log: Logger;
  maxSize?: number;
  minFreeDisk?: number;
  /** A blob being streamed to a client or filled right now. */
  inUse: (digest: Digest) => boolean;
  /** Drop an evicted manifest or blob from in-memory caches. */
  forget?: (digest: Digest) => void;
  onEvict?: (kind: 'blob' | 'manifest' | 'partial', size: number) => void;
}

const RECENT = 20;

/** Bytes freed per image: everything evicted grouped by the first name it carries. */
export function imagesOf(r: SweepResult): { image: string; bytes: number }[] {
  const by = new Map<string, number>();
  for (const e of r.evicted) {
    const name = e.names[0] ?? `(unnamed) ${e.digest}`;
    by.set(name, (by.get(name) ?? 0) + e.size);
  }
  return [...by].map(([image, bytes]) => ({ image, bytes }));
}

export interface SweepRecord {
  at: number;
  freedBytes: number;
  short: boolean;
  images: { image: string; bytes: number }[];
}

export class Eviction {
  /** The last sweeps that evicted something, newest first (status page). */
  readonly recentSweeps: SweepRecord[] = [];
  private running: Promise<SweepResult> | undefined;
  private again = false;
  constructor(private readonly deps: EvictionDeps) {}

  /** How many bytes must go: over the size budget, or under the free-disk low-water mark. */
  async needed(): Promise<number> {
    const { usage, maxSize, minFreeDisk, store } = this.deps;
    let need = 0;
    if (maxSize !== undefined) {
      const t = usage.totals();
      // Partial downloads take disk space too: they count against the budget.
      const partial = (await store.partials()).reduce((n, p) => n + p.size, 0);
      need = Math.max(need, t.blobBytes + t.manifestBytes + partial - maxSize);
    }
    if (minFreeDisk !== undefined) {
      const fs = await statfs(store.paths.root);
      need = Math.max(need, minFreeDisk - fs.bavail * fs.bsize);
    }
    return need;
  }

  /** One sweep at a time; `dryRun` decides and reports but deletes nothing. */
  sweep(opts: { dryRun?: boolean; force?: number } = {}): Promise<SweepResult> {
    if (this.running) {
      // What was committed since the running sweep measured the store is not in its numbers: go once more.
      if (!opts.dryRun) this.again = true;
      return this.running;
    }
    this.running = this.run(opts).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.sweep().catch((e: unknown) => this.deps.log.error({ err: e }, 'eviction sweep failed'));
      }
    });
    return this.running;
  }

  private async run(opts: { dryRun?: boolean; force?: number }): Promise<SweepResult> {
    const { usage, store, access, log } = this.deps;
    access.flush();
    const needed = opts.force ?? (await this.needed());
    const result: SweepResult = { needed, freedBytes: 0, evicted: [], short: false };
    if (needed <= 0) return result;
    // Interrupted downloads go first, oldest first (they only save a re-download of what they hold); one being
    // written right now (locked by a live process) stays.
    for (const p of await store.partials()) {
      if (result.freedBytes >= needed) return result;
      if (p.busy) continue;
      if (!opts.dryRun && !(await store.removePartial(p.path))) continue;
      result.evicted.push({ kind: 'partial', digest: partialDigest(p.path), size: p.size, names: ['(interrupted downloads)'] });
      result.freedBytes += p.size;
      if (!opts.dryRun) this.deps.onEvict?.('partial', p.size);
    }
    if (result.freedBytes >= needed) {
      if (!opts.dryRun) log.info({ needed, freed: result.freedBytes, partials: result.evicted.length }, 'eviction sweep');
      return result;
    }
    const files: Digest[] = [];
    // Names are read before the rows go: an image's blobs and child manifests inherit its names.
    const owners = new Map<Digest, string[]>();
    const decide = (): void => {
      const pinned = usage.pinnedClosure();
      // Cached foreign layers go last: an air-gapped site cannot fetch them again from anywhere.
      const foreign = usage.cachedForeignLayers();
      for (const lastResort of [false, true]) {
        const keep = (d: Digest) => pinned.has(d) || this.deps.inUse(d) || (!lastResort && foreign.has(d));
        for (;;) {
          // Blobs no kept manifest needs go first, least recently used first.
          for (const blob of usage.unreferencedBlobs()) {
            if (result.freedBytes >= needed) return;
            if (keep(blob.digest)) continue;
            usage.deleteBlob(blob.digest);
            files.push(blob.digest);
            result.evicted.push({ kind: 'blob', ...blob, names: owners.get(blob.digest) ?? usage.repositories(blob.digest) });
            result.freedBytes += blob.size;
          }
          if (result.freedBytes >= needed) return;
          // Then the least recently used image or index; what only it needed becomes a candidate next round.
          const root = usage.rootManifests().find((c) => !keep(c.digest));
          if (!root) break;
          const names = owners.get(root.digest) ?? usage.imageNames(root.digest);
          for (const child of usage.children(root.digest)) if (!owners.has(child)) owners.set(child, names);
          usage.deleteManifest(root.digest);
          result.evicted.push({ kind: 'manifest', ...root, names });
          result.freedBytes += root.size;
        }
      }
      result.short = true;
    };
    if (opts.dryRun) {
      // Decide inside a transaction that is rolled back: the report is exact and nothing changes.
      try {
        usage.transaction(() => {
          decide();
          throw new RollBack();
        });
      } catch (e) {
        if (!(e instanceof RollBack)) throw e;
      }
      return result;
    }
    usage.transaction(decide);
    // Row first (committed above), then the file: a crash in between leaves a file without a row, which
    // startup reconciliation adopts again; never a row whose file is gone. A client may have fetched a digest
    // again since its row went (a fill committed file, then row): that file is the blob now, so it stays.
    for (const d of files) {
      if (this.deps.meta.blobSize(d) === undefined) await store.delete(d);
    }
    for (const e of result.evicted) {
      if (e.kind === 'partial') continue;
      this.deps.forget?.(e.digest);
      this.deps.onEvict?.(e.kind, e.size);
    }
    const manifests = result.evicted.filter((e) => e.kind === 'manifest').length;
    const images = imagesOf(result);
    log.info(
      { needed, freed: result.freedBytes, blobs: files.length, manifests, short: result.short, images },
      `eviction sweep: evicted ${images.length} image(s), ${result.freedBytes} bytes: ${images.map((i) => `${i.image} (${i.bytes} B)`).join(', ')}`,
    );
    if (result.evicted.length > 0) this.recentSweeps.unshift({ at: Date.now(), freedBytes: result.freedBytes, short: result.short, images });
    this.recentSweeps.length = Math.min(this.recentSweeps.length, RECENT);
    return result;
  }
}

class RollBack extends Error {}

/** partial/<alg>-<hex> -> <alg>:<hex> */
function partialDigest(path: string): Digest {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return name.replace('-', ':') as Digest;
}

/** Removes every partial download no live process is writing (the disk is full: they are the cheapest to lose). */
export async function clearPartials(store: BlobStore): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const p of await store.partials()) {
    if (p.busy || !(await store.removePartial(p.path))) continue;
    files++;
    bytes += p.size;
  }
  return { files, bytes };
}
