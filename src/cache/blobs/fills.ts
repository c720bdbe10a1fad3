// The fills registry: at most one fill per digest in this process (single flight); every reader follows that one.
import type { Digest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { Coalescer } from '../coalesce.js';
import { BlobFill } from './fill.js';
import type { FillDeps, FillSource } from './fill-contract.js';
import type { BlobHandle, BlobOutcome } from './handle.js';
import { Slots } from '../slots.js';

/** A queued fill whose every caller went away: it was never started (nobody is there to see this error). */
export class FillNotWantedError extends OciError {
  constructor(reason: string) {
    super('UNAVAILABLE', { reason });
    this.name = 'FillNotWantedError';
  }
}

export class Fills {
  private readonly fills = new Map<Digest, BlobFill>();
  private readonly starting = new Coalescer<BlobFill>();
  private readonly slots: Slots;
  private readonly waiting = new Map<Digest, { n: number }>();
  /** What each running fill is for (`upstream/repo`), for the status page. */
  private readonly labels = new Map<Digest, string>();

  constructor(
    private readonly deps: FillDeps & { maxFills?: number; maxFillsPerUpstream?: number },
    /** Called once per fill when it committed or failed. */
    private readonly onSettled: (digest: Digest, fill: BlobFill) => void,
  ) {
    this.slots = new Slots(deps.maxFills ?? Infinity, deps.maxFillsPerUpstream ?? Infinity);
  }

  /** Fills waiting for a slot (the global or their upstream's cap). */
  get queued(): number {
    return this.slots.queued;
  }

  get inFlight(): number {
    return this.fills.size;
  }

  /** The fill of this digest registered here (it may have just finished). */
  get(digest: Digest): BlobFill | undefined {
    return this.fills.get(digest);
  }

  /** Settles when this process's fill of `digest`, if one runs, has committed or failed (readers end before the commit). */
  async settled(digest: Digest): Promise<void> {
    await this.fills.get(digest)?.settled;
  }

  /** Settles when every fill in flight has committed or failed (graceful shutdown). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.fills.values()].map((f) => f.settled));
  }

  /** The fills downloading now: digest, what for, bytes received of how many. */
  list(): { digest: Digest; label?: string; received: number; size?: number }[] {
    return [...this.fills.values()]
      .filter((f) => f.active)
      .map((f) => ({ digest: f.digest, ...(this.labels.has(f.digest) ? { label: this.labels.get(f.digest)! } : {}), received: f.received, size: f.size }));
  }

  /** One fill per digest: joins the running one, or starts one from make(). */
  async startOrJoin(
    digest: Digest,
    make: () => Promise<FillSource>,
    upstream = '',
    signal?: AbortSignal,
    /** What the fill is for (`upstream/repo`), shown on the status page. */
    label?: string,
  ): Promise<{ fill: BlobFill; joined: boolean }> {
    const running = this.fills.get(digest);
    if (running?.active) return { fill: running, joined: true };
    // Callers still waiting for this digest's fill to start; one without a signal (prefetch) always counts.
    const interest = this.waiting.get(digest) ?? { n: 0 };
    this.waiting.set(digest, interest);
    if (!signal?.aborted) interest.n++;
    signal?.addEventListener('abort', () => interest.n--, { once: true });
    const { promise, joined } = this.starting.run(digest, async () => {
      // Past the caps, a new fill waits here (its callers with it) before it asks the upstream for anything.
      let release: () => void;
      try {
        release = await this.slots.acquire(upstream);
      } finally {
        this.waiting.delete(digest);
      }
      if (interest.n <= 0) {
        release();
        throw new FillNotWantedError(`every client waiting for ${digest} left before its download could start`);
      }
      let fill: BlobFill;
      try {
        fill = await BlobFill.start(this.deps, await make(), digest);
      } catch (e) {
        release();
        throw e;
      }
      this.fills.set(digest, fill);
      if (label) this.labels.set(digest, label);
      void fill.settled.then(() => {
        release();
        if (this.fills.get(digest) === fill) {
          this.fills.delete(digest);
          this.labels.delete(digest);
        }
        this.onSettled(digest, fill);
      });
      return fill;
    });
    return { fill: await promise, joined };
  }

  /** A handle whose body follows the fill as it grows. */
  follow(fill: BlobFill, outcome: BlobOutcome): BlobHandle {
    return {
      size: fill.size,
      outcome,
      resumedFrom: fill.resumedFrom,
      open: (s, e) => fill.reader(s, e),
      send: (sink, s, e) => fill.send(sink, s, e),
      sendNeedsZeroCopy: true,
    };
  }
}
