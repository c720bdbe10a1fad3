// A byte-rate limit shared by every fill in the process (--upstream-rate), so an office link is never saturated.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Token bucket that may go into debt: take(n) returns at once while there is credit, else after the time the
 * debt takes to repay at `bytesPerSecond`. Calls are served in order, so concurrent fills share the rate fairly.
 */
export class RateLimiter {
  private credit: number;
  private last: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    readonly bytesPerSecond: number,
    /** Credit that may accumulate while idle: a short burst, not seconds of line rate. */
    private readonly burst = Math.max(bytesPerSecond / 10, 64 * 1024),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.credit = this.burst;
    this.last = this.now();
  }

  take(bytes: number): Promise<void> {
    const next = this.queue.then(() => this.consume(bytes));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async consume(bytes: number): Promise<void> {
    const t = this.now();
    this.credit = Math.min(this.burst, this.credit + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
    this.credit -= bytes;
    if (this.credit < 0) await sleep((-this.credit / this.bytesPerSecond) * 1000);
  }
}
