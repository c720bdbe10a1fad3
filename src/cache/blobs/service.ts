// The blob service: a GET or HEAD of one blob for one repository decides between a hit (linked to the repository,
// or confirmed by its upstream), following a running fill, the foreign-layer policy, a new coalesced fill, and
// pass-through while the store cannot be written.
import type { Logger } from 'pino';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../store/blob-store.js';
import { isDiskError } from '../../store/errors.js';
import type { Metadata } from '../../store/metadata.js';
import { header, type UpstreamClient } from '../../upstream/client.js';
import { UpstreamNotFound } from '../../upstream/outcomes.js';
import type { Target } from '../../upstream/registries.js';
import { bestEffort } from '../best-effort.js';
import { StoreUnwritableError, type BlobFill, type FillDeps, type FillSource } from './fill.js';
import { Fills } from './fills.js';
import type { BlobHandle, BlobOutcome, ForeignHooks } from './handle.js';
import { Hits } from './hit.js';
import { passThroughHandle } from './pass-through.js';
import { UpstreamBlobs } from './source.js';

export interface BlobsDeps extends FillDeps {
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  client: UpstreamClient;
  foreign?: ForeignHooks;
  /** A cached blob was used (batched into last_access for eviction). */
  onAccess?: (digest: Digest) => void;
  /** A fill committed a new blob (the storage budget may need a sweep), or the store ran out of room. */
  onCommit?: (digest: Digest, size: number) => void;
  onStoreFull?: () => void;
  now?: () => number;
  /** Shared upstream rate limit (--upstream-rate): awaited before each chunk is written. */
  throttle?: (bytes: number) => Promise<void>;
}

/** After the store refused a write, misses pass through for this long before a fill is tried again. */
const PASS_THROUGH_MS = 30_000;

export class Blobs {
  private readonly hits: Hits;
  private readonly fills: Fills;
  private readonly upstream: UpstreamBlobs;
  private passThroughUntil = 0;

  constructor(private readonly deps: BlobsDeps) {
    this.hits = new Hits(deps.store, deps.onAccess);
    this.fills = new Fills(deps, (digest, fill) => this.settled(digest, fill));
    this.upstream = new UpstreamBlobs(deps);
  }

  get fillsInFlight(): number {
    return this.fills.inFlight;
  }

  inUse(digest: Digest): boolean {
    return this.hits.isReading(digest) || this.fills.get(digest) !== undefined;
  }

  /** Settles when this process's fill of `digest`, if one runs, has committed or failed (readers end before the commit). */
  fillSettled(digest: Digest): Promise<void> {
    return this.fills.settled(digest);
  }

  /** Settles when every fill in flight has committed or failed (graceful shutdown). */
  drain(): Promise<void> {
    return this.fills.drain();
  }

  /** Drops an evicted blob from the in-memory cache. */
  forget(digest: Digest): void {
    this.hits.forget(digest);
  }

  /** For HEAD: answers from metadata, a running fill, or an upstream HEAD. Never downloads a body. */
  async stat(target: Target, digest: Digest): Promise<{ size: number | undefined; outcome: BlobOutcome }> {
    const { meta } = this.deps;
    const size = meta.blobSize(digest);
    const fill = this.fills.get(digest);
    if (meta.isLinked(target.upstream.name, target.repo, digest)) {
      if (size !== undefined) {
        this.deps.onAccess?.(digest);
        return { size, outcome: 'hit' };
      }
      if (fill) return { size: fill.size, outcome: 'coalesced' };
    }
    const fd = size === undefined && !fill ? this.deps.foreign?.lookup(target, digest) : undefined;
    if (fd?.foreign) return this.deps.foreign!.stat(target, digest, fd);
    let res;
    try {
      res = await this.upstream.head(target, digest);
    } catch (e) {
      if (fd && fd.urls.length > 0 && e instanceof UpstreamNotFound) return this.deps.foreign!.stat(target, digest, fd);
      throw e;
    }
    if (size !== undefined) return { size, outcome: 'hit' };
    if (fill) return { size: fill.size, outcome: 'coalesced' };
    const cl = header(res.headers, 'content-length');
    return { size: cl !== undefined ? Number(cl) : undefined, outcome: 'miss' };
  }

  async get(target: Target, digest: Digest): Promise<BlobHandle> {
    const { meta } = this.deps;
    let linked = meta.isLinked(target.upstream.name, target.repo, digest);
    const size = meta.blobSize(digest);
    if (size !== undefined) {
      // Another repository's copy is served here only once upstream confirms this repository has it.
      if (!linked) await this.upstream.head(target, digest);
      const hit = await this.hits.open(digest, size);
      if (hit) return hit;
      // Row without file (evicted meanwhile, or removed by hand): forget it and fetch again.
      bestEffort(this.deps.log, 'blob row', () => meta.deleteBlob(digest));
      linked = true;
    }
    const running = this.fills.get(digest);
    if (running?.active) {
      if (!linked) await this.upstream.head(target, digest);
      return this.fills.follow(running, 'coalesced');
    }
    const fd = this.deps.foreign?.lookup(target, digest);
    if (fd?.foreign) return this.deps.foreign!.resolve(target, digest, fd, (make) => this.fillFrom(digest, make, 'foreign-fetch'));
    const now = this.deps.now ?? Date.now;
    try {
      if (now() < this.passThroughUntil) return passThroughHandle(await this.upstream.source(target, digest, false), undefined, digest);
      const { fill, joined } = await this.fills.startOrJoin(digest, () => this.upstream.source(target, digest));
      if (joined && !linked) await this.upstream.head(target, digest);
      if (fill.state === 'done') return this.get(target, digest);
      return this.fills.follow(fill, joined ? 'coalesced' : 'miss');
    } catch (e) {
      if (e instanceof StoreUnwritableError) {
        this.storeRefused(e.reason);
        // The first caller streams the response it already has; callers that joined it fetch their own.
        const mine = !e.claimed;
        e.claimed = true;
        return passThroughHandle(mine ? e.source : await this.upstream.source(target, digest, false), mine ? e.size : undefined, digest);
      }
      // An ordinary layer with urls: the upstream first, the allowed URLs when it does not have it.
      if (fd && fd.urls.length > 0 && e instanceof UpstreamNotFound)
        return this.deps.foreign!.resolve(target, digest, fd, (make) => this.fillFrom(digest, make, 'foreign-fetch'));
      throw e;
    }
  }

  private settled(digest: Digest, fill: BlobFill): void {
    if (fill.state === 'done') this.deps.onCommit?.(digest, fill.received);
    else if (isDiskError(fill.error)) this.storeRefused(fill.error!);
  }

  private storeRefused(e: Error): void {
    this.deps.log.warn({ err: e.message }, 'store unwritable: passing blobs through without caching');
    this.passThroughUntil = (this.deps.now ?? Date.now)() + PASS_THROUGH_MS;
    this.deps.onStoreFull?.();
  }

  private async fillFrom(digest: Digest, make: () => Promise<FillSource>, outcome: BlobOutcome): Promise<BlobHandle> {
    const { fill, joined } = await this.fills.startOrJoin(digest, make);
    if (fill.state === 'done') {
      const size = this.deps.meta.blobSize(digest);
      const hit = size !== undefined ? await this.hits.open(digest, size) : undefined;
      if (hit) return hit;
    }
    return this.fills.follow(fill, joined ? 'coalesced' : outcome);
  }
}
