// The fills registry: at most one fill per digest in this process (single flight); every reader follows that one.
import type { Digest } from '../../oci/digest.js';
import { Coalescer } from '../coalesce.js';
import { BlobFill, type FillDeps, type FillSource } from './fill.js';
import type { BlobHandle, BlobOutcome } from './handle.js';

export class Fills {
  private readonly fills = new Map<Digest, BlobFill>();
  private readonly starting = new Coalescer<BlobFill>();

  constructor(
    private readonly deps: FillDeps,
    /** Called once per fill when it committed or failed. */
    private readonly onSettled: (digest: Digest, fill: BlobFill) => void,
  ) {}

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

  /** One fill per digest: joins the running one, or starts one from make(). */
  async startOrJoin(digest: Digest, make: () => Promise<FillSource>): Promise<{ fill: BlobFill; joined: boolean }> {
    const running = this.fills.get(digest);
    if (running?.active) return { fill: running, joined: true };
    const { promise, joined } = this.starting.run(digest, async () => {
      const fill = await BlobFill.start(this.deps, await make(), digest);
      this.fills.set(digest, fill);
      void fill.settled.then(() => {
        if (this.fills.get(digest) === fill) this.fills.delete(digest);
        this.onSettled(digest, fill);
      });
      return fill;
    });
    return { fill: await promise, joined };
  }

  /** A handle whose body follows the fill as it grows. */
  follow(fill: BlobFill, outcome: BlobOutcome): BlobHandle {
    return { size: fill.size, outcome, open: (s, e) => fill.reader(s, e) };
  }
}
