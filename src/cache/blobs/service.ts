// Blob lookups: local CAS (if linked to the repo) -> join a running fill -> start one coalesced upstream fill.
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { Digest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { Metadata } from '../../store/metadata.js';
import { header, type Headers, type UpstreamClient } from '../../upstream/client.js';
import type { Target } from '../../upstream/registries.js';
import { BlobFill, StoreUnwritableError, type FillDeps, type FillSource } from './fill.js';
import { isDiskError, passThroughHandle } from './pass-through.js';
import { bestEffort } from '../best-effort.js';
import { Coalescer } from '../coalesce.js';
import { fromUnreachable, fromUpstreamStatus } from '../../upstream/outcomes.js';

type HeadResult = { status: number; headers: Headers };

function upstreamSaid404(e: unknown): boolean {
  return e instanceof OciError && (e.detail as { upstreamStatus?: number } | undefined)?.upstreamStatus === 404;
}

export type BlobOutcome = 'hit' | 'miss' | 'coalesced' | 'redirect' | 'foreign-fetch' | 'pass-through';

export interface BlobHandle {
  /** Total size; undefined only for a miss whose upstream sent no Content-Length. */
  size: number | undefined;
  outcome: BlobOutcome;
  /** When set, answer 302 to this URL instead of sending bytes (foreign layers whose policy is redirect). */
  redirect?: string;
  /** Bytes [start, end] inclusive. Call at most once; or discard() instead. */
  open(start?: number, end?: number): Readable;
  /** Releases what the handle holds when the body will not be sent after all. */
  discard?(): void;
  /** The body can only be sent whole (pass-through): a Range header is ignored (RFC 9110 allows it). */
  wholeOnly?: boolean;
}

/** A descriptor with `urls` or a foreign/non-distributable media type, as recorded from a manifest. */
export interface ForeignDescriptor {
  size: number;
  mediaType: string;
  urls: string[];
  /** Foreign/non-distributable media type: never asked of the upstream registry. */
  foreign: boolean;
}

/** Starts (or joins) the one fill of a digest from a source other than the upstream registry. */
export type FillStarter = (makeSource: () => Promise<FillSource>) => Promise<BlobHandle>;

/** Foreign-layer policy (foreign/layers.ts): how to serve what the upstream registry does not hold. */
export interface ForeignHooks {
  lookup(target: Target, digest: Digest): ForeignDescriptor | undefined;
  /** GET: a redirect handle, or a handle on a verified fill from an allowed URL; else throws an OciError. */
  resolve(target: Target, digest: Digest, d: ForeignDescriptor, fill: FillStarter): Promise<BlobHandle>;
  /** HEAD: size from metadata, without fetching; throws an OciError when the policy would refuse the GET. */
  stat(target: Target, digest: Digest, d: ForeignDescriptor): Promise<{ size: number; outcome: BlobOutcome }>;
}

export interface BlobsDeps extends FillDeps {
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

const SMALL_BLOB_MAX = 256 << 10;
const SMALL_CACHE_BYTES = 64 << 20;

/** After the store refused a write, misses pass through for this long before a fill is tried again. */
const PASS_THROUGH_MS = 30_000;

export class Blobs {
  private readonly fills = new Map<Digest, BlobFill>();
  private readonly starting = new Coalescer<BlobFill>();
  private readonly confirming = new Coalescer<HeadResult>();
  /** Small committed blobs, verified bytes as on disk (lru-cache: bounded by bytes). */
  private readonly small = new LRUCache<Digest, Buffer>({ maxSize: SMALL_CACHE_BYTES, sizeCalculation: (b) => b.length || 1 });
  /** Digests whose committed file is being streamed right now: never evicted under a reader. */
  private readonly reading = new Map<Digest, number>();
  private passThroughUntil = 0;

  constructor(private readonly deps: BlobsDeps) {}

  get fillsInFlight(): number {
    return this.fills.size;
  }

  inUse(digest: Digest): boolean {
    return this.reading.has(digest) || this.fills.has(digest);
  }

  /** Settles when this process's fill of `digest`, if one runs, has committed or failed (readers end before the commit). */
  async fillSettled(digest: Digest): Promise<void> {
    await this.fills.get(digest)?.settled;
  }

  /** Settles when every fill in flight has committed or failed (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.fills.values()].map((f) => f.settled));
  }

  /** Drops an evicted blob from the in-memory cache. */
  forget(digest: Digest): void {
    this.small.delete(digest);
  }

  private memoryHit(digest: Digest, bytes: Buffer): BlobHandle {
    this.deps.onAccess?.(digest);
    return { size: bytes.length, outcome: 'hit', open: (start = 0, end = bytes.length - 1) => Readable.from([bytes.subarray(start, end + 1)]) };
  }

  /**
   * A hit: small blobs (configs, mostly) from memory; others from an open handle, so an eviction between
   * lookup and read cannot cut the response.
   */
  private async hit(digest: Digest, size: number): Promise<BlobHandle | undefined> {
    const cached = this.small.get(digest);
    if (cached) return this.memoryHit(digest, cached);
    const fh = await this.deps.store.openHandle(digest);
    if (!fh) return undefined;
    if ((await fh.stat()).size !== size) {
      await fh.close();
      return undefined;
    }
    if (size <= SMALL_BLOB_MAX) {
      // Every pull reads its config blob: keeping small ones in memory saves four threadpool trips per request.
      const bytes = await fh.readFile().finally(() => fh.close());
      if (bytes.length !== size) return undefined;
      this.small.set(digest, bytes);
      return this.memoryHit(digest, bytes);
    }
    this.reading.set(digest, (this.reading.get(digest) ?? 0) + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const n = this.reading.get(digest)! - 1;
      if (n > 0) this.reading.set(digest, n);
      else this.reading.delete(digest);
    };
    this.deps.onAccess?.(digest);
    return {
      size,
      outcome: 'hit',
      open: (start, end) => {
        const stream = fh.createReadStream({ start, end, highWaterMark: 1 << 20, autoClose: true });
        stream.once('close', release);
        return stream;
      },
      discard: () => {
        release();
        void fh.close();
      },
    };
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
    let res: HeadResult;
    try {
      res = await this.head(target, digest);
    } catch (e) {
      if (fd && fd.urls.length > 0 && upstreamSaid404(e)) return this.deps.foreign!.stat(target, digest, fd);
      throw e;
    }
    if (size !== undefined) return { size, outcome: 'hit' };
    if (fill) return { size: fill.size, outcome: 'coalesced' };
    const cl = header(res.headers, 'content-length');
    return { size: cl !== undefined ? Number(cl) : undefined, outcome: 'miss' };
  }

  async get(target: Target, digest: Digest): Promise<BlobHandle> {
    const { meta } = this.deps;
    const up = target.upstream.name;
    let linked = meta.isLinked(up, target.repo, digest);
    const size = meta.blobSize(digest);
    if (size !== undefined) {
      // Another repository's copy is served here only once upstream confirms this repository has it.
      if (!linked) await this.confirm(target, digest);
      const hit = await this.hit(digest, size);
      if (hit) return hit;
      // Row without file (evicted meanwhile, or removed by hand): forget it and fetch again.
      bestEffort(this.deps.log, 'blob row', () => meta.deleteBlob(digest));
      linked = true;
    }
    const running = this.fills.get(digest);
    if (running?.active) {
      if (!linked) await this.confirm(target, digest);
      return this.follow(running, 'coalesced');
    }
    const fd = this.deps.foreign?.lookup(target, digest);
    if (fd?.foreign) return this.deps.foreign!.resolve(target, digest, fd, (make) => this.fillFrom(digest, make, 'foreign-fetch'));
    const now = this.deps.now ?? Date.now;
    try {
      if (now() < this.passThroughUntil) return passThroughHandle(await this.upstreamSource(target, digest, false), undefined, digest);
      const { fill, joined } = await this.startOrJoin(digest, () => this.upstreamSource(target, digest));
      if (joined && !linked) await this.confirm(target, digest);
      if (fill.state === 'done') return this.get(target, digest);
      return this.follow(fill, joined ? 'coalesced' : 'miss');
    } catch (e) {
      if (e instanceof StoreUnwritableError) {
        this.storeRefused(e.reason);
        // The first caller streams the response it already has; callers that joined it fetch their own.
        const mine = !e.claimed;
        e.claimed = true;
        return passThroughHandle(mine ? e.source : await this.upstreamSource(target, digest, false), mine ? e.size : undefined, digest);
      }
      // An ordinary layer with urls: the upstream first, the allowed URLs when it does not have it.
      if (fd && fd.urls.length > 0 && upstreamSaid404(e)) return this.deps.foreign!.resolve(target, digest, fd, (make) => this.fillFrom(digest, make, 'foreign-fetch'));
      throw e;
    }
  }

  private storeRefused(e: Error): void {
    this.deps.log.warn({ err: e.message }, 'store unwritable: passing blobs through without caching');
    this.passThroughUntil = (this.deps.now ?? Date.now)() + PASS_THROUGH_MS;
    this.deps.onStoreFull?.();
  }

  private async fillFrom(digest: Digest, make: () => Promise<FillSource>, outcome: BlobOutcome): Promise<BlobHandle> {
    const { fill, joined } = await this.startOrJoin(digest, make);
    if (fill.state === 'done') {
      const size = this.deps.meta.blobSize(digest);
      const hit = size !== undefined ? await this.hit(digest, size) : undefined;
      if (hit) return hit;
    }
    return this.follow(fill, joined ? 'coalesced' : outcome);
  }

  /** One fill per digest: joins the running one, or starts one from make(). */
  private async startOrJoin(digest: Digest, make: () => Promise<FillSource>): Promise<{ fill: BlobFill; joined: boolean }> {
    const running = this.fills.get(digest);
    if (running?.active) return { fill: running, joined: true };
    const { promise, joined } = this.starting.run(digest, async () => {
      const fill = await BlobFill.start(this.deps, await make(), digest);
      this.fills.set(digest, fill);
      void fill.settled.then(() => {
        if (this.fills.get(digest) === fill) this.fills.delete(digest);
        if (fill.state === 'done') this.deps.onCommit?.(digest, fill.received);
        else if (isDiskError(fill.error)) this.storeRefused(fill.error!);
      });
      return fill;
    });
    return { fill: await promise, joined };
  }

  private follow(fill: BlobFill, outcome: BlobOutcome): BlobHandle {
    return { size: fill.size, outcome, open: (s, e) => fill.reader(s, e) };
  }

  /**
   * GET from the upstream. With `resumable`, an interrupted earlier download of this digest (partial/) is
   * continued with Range instead of fetched again from the first byte.
   */
  private async upstreamSource(target: Target, digest: Digest, resumable = true): Promise<FillSource> {
    const what = { digest, repo: target.repo, upstream: target.upstream.name };
    const path = `/blobs/${digest}`;
    const get = (offset: number) => this.deps.client.send(target.upstream, target.repo, path, 'GET', offset > 0 ? { range: `bytes=${offset}-` } : {});
    const partial = resumable ? await this.deps.store.claimPartial(digest).catch(() => undefined) : undefined;
    let res;
    try {
      res = await get(partial?.size ?? 0);
      if (partial && partial.size > 0 && res.status !== 206) {
        // The upstream will not resume (or the partial is stale): start over from the first byte.
        await res.body.dump().catch(() => undefined);
        await partial.handle.truncate(0);
        partial.size = 0;
        res = await get(0);
      }
    } catch (e) {
      await partial?.abandon();
      throw fromUnreachable(e, 'BLOB_UNKNOWN', what);
    }
    if (res.status !== 200 && res.status !== 206) {
      await partial?.abandon();
      await res.body.dump().catch(() => undefined);
      throw fromUpstreamStatus(res, 'BLOB_UNKNOWN', what);
    }
    // Upstream just served it for this repository: that is proof enough for the link.
    bestEffort(this.deps.log, 'link', () => this.deps.meta.link(target.upstream.name, target.repo, [digest]));
    return { first: res, resume: get, ...(partial ? { partial } : {}), ...(this.deps.throttle ? { throttle: this.deps.throttle } : {}) };
  }

  /** Upstream HEAD for this repository; links the digest on 200, throws BLOB_UNKNOWN (or 429/403) otherwise. */
  private async confirm(target: Target, digest: Digest): Promise<void> {
    await this.head(target, digest);
  }

  private async head(target: Target, digest: Digest): Promise<HeadResult> {
    const what = { digest, repo: target.repo, upstream: target.upstream.name };
    const key = `${target.upstream.name}|${target.repo}|${digest}`;
    const { promise } = this.confirming.run(key, async () => {
      const res = await this.deps.client.send(target.upstream, target.repo, `/blobs/${digest}`, 'HEAD');
      await res.body.dump().catch(() => undefined);
      return { status: res.status, headers: res.headers };
    });
    let res: HeadResult;
    try {
      res = await promise;
    } catch (e) {
      throw fromUnreachable(e, 'BLOB_UNKNOWN', { ...what, reason: 'cannot confirm this repository has the blob' });
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, 'BLOB_UNKNOWN', what);
    bestEffort(this.deps.log, 'link', () => this.deps.meta.link(target.upstream.name, target.repo, [digest]));
    return res;
  }
}
