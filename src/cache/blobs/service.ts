// The blob service: a GET or HEAD of one blob for one repository decides between a hit (linked to the repository,
// or confirmed by its upstream), following a running fill, the foreign-layer policy, a new coalesced fill, and
// pass-through while the store cannot be written.
import type { Logger } from 'pino';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../store/blob-store.js';
import { isDiskError } from '../../store/errors.js';
import { FOREIGN_HOLDER, type Metadata } from '../../store/metadata.js';
import type { UpstreamSender } from '../../upstream/chain.js';
import { header } from '../../upstream/client.js';
import { UpstreamNotFound } from '../../upstream/outcomes.js';
import type { Target } from '../../upstream/registries.js';
import { bestEffort } from '../best-effort.js';
import { Admission, type AdmissionDeps } from './admission.js';
import { FilledElsewhere, followElsewhere, holderElsewhere } from './elsewhere.js';
import type { BlobFill } from './fill.js';
import { StoreUnwritableError, type FillDeps, type FillSource } from './fill-contract.js';
import { Fills } from './fills.js';
import type { BlobHandle, BlobOutcome, ForeignDescriptor, ForeignHooks } from './handle.js';
import { Hits } from './hit.js';
import { passThroughHandle } from './pass-through.js';
import { UpstreamBlobs } from './source.js';

export interface BlobsDeps extends FillDeps, AdmissionDeps {
  /** Concurrent fills in this process, and per upstream; more wait in a queue. */
  maxFills?: number;
  maxFillsPerUpstream?: number;
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  client: UpstreamSender;
  foreign?: ForeignHooks;
  /** A cached blob was used (batched into last_access for eviction). */
  onAccess?: (digest: Digest) => void;
  /** A fill committed a new blob (the storage budget may need a sweep). */
  onCommit?: (digest: Digest, size: number) => void;
  /** Shared upstream rate limit (--upstream-rate): awaited before each chunk is written. */
  throttle?: (bytes: number) => Promise<void>;
}

class NoRoomError extends Error {
  override name = 'NoRoomError';
}

function contentLength(src: FillSource): number | undefined {
  const cl = header(src.first.headers, 'content-length');
  return src.first.status === 200 && cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
}

export class Blobs {
  private readonly hits: Hits;
  private readonly fills: Fills;
  private readonly upstream: UpstreamBlobs;
  private readonly admission: Admission;

  constructor(private readonly deps: BlobsDeps) {
    this.hits = new Hits(deps.store, deps.onAccess);
    this.fills = new Fills(deps, (digest, fill) => this.settled(digest, fill));
    this.upstream = new UpstreamBlobs(deps);
    this.admission = new Admission(deps);
  }

  /** Undefined while the store takes new blobs; else why not (misses are passed through meanwhile). */
  get storeRefusal(): string | undefined {
    return this.admission.refused;
  }

  /** The upstream GET for a new fill; a blob that cannot fit is streamed through instead (StoreUnwritableError). */
  private async fillSource(target: Target, digest: Digest): Promise<FillSource> {
    const src = await this.upstream.source(target, digest);
    if ((src.partial?.size ?? 0) > 0) return src;
    const size = contentLength(src);
    if (size === undefined) {
      // No size announced, so no room check up front: the fill is cut where the store's room ends.
      const max = await this.admission.capUnknown();
      return max === undefined ? src : { ...src, maxBytes: max };
    }
    const room = await this.admission.room(size);
    if (room.ok) return src;
    await src.partial?.abandon();
    this.deps.log.info({ digest, reason: room.why }, 'not caching this blob: streaming it through');
    if (room.disk) this.deps.onStoreFull?.();
    const { partial: _, ...whole } = src;
    throw new StoreUnwritableError(new NoRoomError(room.why), whole, size);
  }

  get fillsInFlight(): number {
    return this.fills.inFlight;
  }

  /** Fills waiting for a slot under the concurrent-fill caps. */
  get fillsQueued(): number {
    return this.fills.queued;
  }

  /** Downloads in progress with their progress (status page). */
  fillsInProgress(): ReturnType<Fills['list']> {
    return this.fills.list();
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

  /**
   * May cached bytes of `digest` be served under this target? 'yes': this upstream delivered these bytes itself
   * and linked the digest to this repository, or a foreign resolution cached them for a descriptor recorded in
   * this repository. 'confirm': this upstream delivered them, but for another repository (a HEAD for this one
   * decides). 'prove': they came from elsewhere; this upstream must deliver them itself (verified).
   */
  private trust(target: Target, digest: Digest, fd: ForeignDescriptor | undefined): 'yes' | 'confirm' | 'prove' {
    const { meta } = this.deps;
    const up = target.upstream.name;
    if (fd && meta.isHolder(FOREIGN_HOLDER, digest)) return 'yes';
    if (!meta.isHolder(up, digest)) return 'prove';
    return meta.isLinked(up, target.repo, digest) ? 'yes' : 'confirm';
  }

  /** For HEAD: answers from metadata, a running fill, or an upstream HEAD. Never downloads a body. */
  async stat(target: Target, digest: Digest): Promise<{ size: number | undefined; outcome: BlobOutcome }> {
    const { meta } = this.deps;
    const size = meta.blobSize(digest);
    const fill = this.fills.get(digest);
    const fd = this.deps.foreign?.lookup(target, digest);
    const trust = this.trust(target, digest, fd);
    if (trust === 'yes' && size !== undefined) {
      this.deps.onAccess?.(digest);
      return { size, outcome: 'hit' };
    }
    const linked = meta.isLinked(target.upstream.name, target.repo, digest);
    if (linked && fill?.active && fill.holder === target.upstream.name) return { size: fill.size, outcome: 'coalesced' };
    if (fd?.foreign) return this.deps.foreign!.stat(target, digest, fd);
    let res;
    try {
      res = await this.upstream.head(target, digest);
    } catch (e) {
      if (fd && fd.urls.length > 0 && e instanceof UpstreamNotFound) return this.deps.foreign!.stat(target, digest, fd);
      throw e;
    }
    // A HEAD sends no bytes: the upstream's own answer is enough here, whoever delivered the cached copy.
    if (size !== undefined && trust === 'confirm') return { size, outcome: 'hit' };
    const cl = header(res.headers, 'content-length');
    return { size: cl !== undefined ? Number(cl) : size, outcome: 'miss' };
  }

  /**
   * `signal`: the client's; once every client waiting for a queued fill is gone, the fill is not started.
   * `pathOnly`: a hit will be sent by someone else (X-Accel-Redirect): only its CAS path is needed, no open file.
   */
  async get(target: Target, digest: Digest, opts: { signal?: AbortSignal; pathOnly?: boolean } = {}): Promise<BlobHandle> {
    const { signal } = opts;
    const { meta } = this.deps;
    const up = target.upstream.name;
    const fd = this.deps.foreign?.lookup(target, digest);
    const trust = this.trust(target, digest, fd);
    const foreign = (): Promise<BlobHandle> => this.resolveForeign(target, digest, fd!);
    // A foreign layer is never asked of the registry: its URLs (per the rules) deliver it, unless they did already.
    if (fd?.foreign && trust !== 'yes') {
      const other = this.fills.get(digest);
      if (other?.active && other.holder !== FOREIGN_HOLDER) await other.settled;
      return foreign();
    }
    let linked = trust === 'yes' || meta.isLinked(up, target.repo, digest);
    const size = meta.blobSize(digest);
    if (size !== undefined) {
      if (trust === 'prove') return this.prove(target, digest, size, fd);
      // Another repository's copy is served here only once upstream confirms this repository has it.
      if (trust === 'confirm') await this.upstream.head(target, digest);
      const hit = await this.hits.open(digest, size, opts.pathOnly);
      if (hit) return hit;
      // Row without file (evicted meanwhile, or removed by hand): forget it and fetch again.
      bestEffort(this.deps.log, 'blob row', () => meta.deleteBlob(digest));
      linked = true;
    }
    const running = this.fills.get(digest);
    if (running?.active) {
      // Someone else's download (another upstream, a foreign URL) proves nothing for this upstream.
      const ours = running.holder === up || (fd !== undefined && running.holder === FOREIGN_HOLDER);
      if (!ours) return this.prove(target, digest, undefined, fd);
      if (running.holder === FOREIGN_HOLDER) return this.fills.follow(running, 'coalesced');
      if (!linked) await this.upstream.head(target, digest);
      return this.fills.follow(running, 'coalesced');
    }
    try {
      if (this.admission.passingThrough) {
        const src = await this.upstream.source(target, digest, false);
        if (!(await this.admission.resumeFor(digest, contentLength(src)))) return passThroughHandle(src, undefined, digest);
        const started = await this.fills.startOrJoin(digest, async () => src, up);
        if (started.joined) {
          src.first.body.destroy();
          if (started.fill.holder !== up) return this.prove(target, digest, undefined, fd);
        }
        return this.fills.follow(started.fill, started.joined ? 'coalesced' : 'miss');
      }
      const { fill, joined } = await this.fills.startOrJoin(
        digest,
        () => this.fillSource(target, digest),
        up,
        signal,
        `${target.upstream.name}/${target.repo}`,
      );
      if (joined && fill.holder !== up) return this.prove(target, digest, undefined, fd);
      if (joined && !linked) await this.upstream.head(target, digest);
      if (fill.state === 'done') return this.get(target, digest, opts);
      return this.fills.follow(fill, joined ? 'coalesced' : 'miss');
    } catch (e) {
      if (e instanceof FilledElsewhere) return this.followElsewhere(target, digest);
      if (e instanceof StoreUnwritableError) {
        // Too big for the budget or the free disk: this blob only; a refused write: every miss for a while.
        if (!(e.reason instanceof NoRoomError)) this.admission.refuse(e.reason);
        // The first caller streams the response it already has; callers that joined it fetch their own.
        const mine = !e.claimed;
        e.claimed = true;
        return passThroughHandle(mine ? e.source : await this.upstream.source(target, digest, false), mine ? e.size : undefined, digest);
      }
      // An ordinary layer with urls: the upstream first, the allowed URLs when it does not have it.
      if (fd && fd.urls.length > 0 && e instanceof UpstreamNotFound) return foreign();
      throw e;
    }
  }

  /**
   * Bytes this process has (or is fetching) from somewhere else: this upstream must deliver them itself for this
   * repository. They are streamed through verified, not stored again; once verified it counts as a holder.
   */
  private async prove(target: Target, digest: Digest, size: number | undefined, fd: ForeignDescriptor | undefined): Promise<BlobHandle> {
    const up = target.upstream.name;
    try {
      const source = await this.upstream.source(target, digest, false);
      return passThroughHandle(source, size, digest, () => bestEffort(this.deps.log, 'holder', () => this.deps.meta.addHolder(up, digest)));
    } catch (e) {
      if (fd && fd.urls.length > 0 && e instanceof UpstreamNotFound) return this.resolveForeign(target, digest, fd);
      throw e;
    }
  }

  /**
   * Another process on this data dir is downloading the digest: confirm this repository and learn the size with
   * an upstream HEAD (no body), then follow its growing file. Without a size, fetch our own copy through.
   */
  private async followElsewhere(target: Target, digest: Digest): Promise<BlobHandle> {
    // Committed meanwhile: an ordinary hit (get() checks the repository as for any hit).
    if (this.deps.meta.blobSize(digest) !== undefined) return this.get(target, digest);
    // Another upstream's download proves nothing for this one (as for a fill in this process).
    if ((await holderElsewhere(this.deps.store, digest)) !== target.upstream.name)
      return this.prove(target, digest, undefined, this.deps.foreign?.lookup(target, digest));
    const res = await this.upstream.head(target, digest);
    const cl = header(res.headers, 'content-length');
    const size = cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    if (size === undefined) return passThroughHandle(await this.upstream.source(target, digest, false), undefined, digest);
    return { size, outcome: 'coalesced', open: (start, end) => followElsewhere(this.deps.store, digest, size, start, end) };
  }

  private settled(digest: Digest, fill: BlobFill): void {
    if (fill.state === 'done') {
      // A commit went through: the store takes blobs again.
      this.admission.committed();
      this.deps.onCommit?.(digest, fill.received);
    } else if (isDiskError(fill.error)) this.admission.refuse(fill.error!);
  }

  /** The foreign-layer policy resolves it; a fill only when the store can take a blob of the descriptor's size. */
  private async resolveForeign(target: Target, digest: Digest, fd: ForeignDescriptor): Promise<BlobHandle> {
    // A fill of it that runs already is joined without a room check (made when it started): awaiting the disk here
    // would let it commit and leave meanwhile, and a second download of the same bytes would start.
    const joining = this.fills.get(digest)?.active === true;
    const fits = joining || (!this.admission.passingThrough && (await this.admission.room(fd.size)).ok);
    return this.deps.foreign!.resolve(target, digest, fd, fits ? (make) => this.fillFrom(digest, make, 'foreign-fetch') : undefined);
  }

  private async fillFrom(digest: Digest, make: () => Promise<FillSource>, outcome: BlobOutcome): Promise<BlobHandle> {
    const { fill, joined } = await this.fills.startOrJoin(digest, async () => ({ ...(await make()), holder: FOREIGN_HOLDER }), 'foreign');
    if (fill.state === 'done') {
      const size = this.deps.meta.blobSize(digest);
      const hit = size !== undefined ? await this.hits.open(digest, size) : undefined;
      if (hit) return hit;
    }
    return this.fills.follow(fill, joined ? 'coalesced' : outcome);
  }
}
