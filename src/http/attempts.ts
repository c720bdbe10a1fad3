// Failed authentication per source address: each credential check is reserved before it runs (so guesses sent at
// once count one each), and an address is refused once its failures plus its checks in flight reach the limit.
import { LRUCache } from 'lru-cache';

/** Where attempts are counted: this process, or under --workers N the cluster primary (cli/cluster-auth.ts). */
export interface AttemptLedger {
  /** Seconds `address` is still refused as far as this process knows (0: not refused). Runs on every request. */
  refusedFor(address: string): number;
  /** Reserves one credential check for `address`: 0 when it may run, else the seconds it is refused for. */
  begin(address: string): Promise<number>;
  /** Ends a check that begin() reserved. */
  end(address: string, failed: boolean): void;
}

interface Entry {
  failures: number;
  pending: number;
}

export class LocalAttempts implements AttemptLedger {
  private readonly entries: LRUCache<string, Entry>;

  constructor(
    private readonly maxFailures: number,
    private readonly windowMs: number,
  ) {
    // The window restarts with each failure (set() renews the entry's TTL).
    this.entries = new LRUCache({ max: 50_000, ttl: windowMs });
  }

  refusedFor(address: string): number {
    const e = this.entries.get(address);
    return e && e.failures >= this.maxFailures ? this.remaining(address) : 0;
  }

  /** begin() without the promise (the cluster primary answers with it). */
  reserve(address: string): number {
    const e = this.entries.get(address);
    if (!e) {
      this.entries.set(address, { failures: 0, pending: 1 });
      return 0;
    }
    // Only checks in flight fill the limit: refused until they end (a second), not for the window.
    if (e.failures + e.pending >= this.maxFailures) return e.failures >= this.maxFailures ? this.remaining(address) : 1;
    e.pending++;
    return 0;
  }

  async begin(address: string): Promise<number> {
    return this.reserve(address);
  }

  end(address: string, failed: boolean): void {
    const e = this.entries.get(address);
    if (!e) return;
    e.pending = Math.max(0, e.pending - 1);
    if (failed) {
      e.failures++;
      this.entries.set(address, e);
    }
  }

  private remaining(address: string): number {
    return Math.max(1, Math.ceil((this.entries.getRemainingTTL(address) || this.windowMs) / 1000));
  }
}
