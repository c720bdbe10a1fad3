// Caps on concurrent work (blob fills, tag-list fetches): a global and a per-upstream limit, with a FIFO queue (a
// request for an upstream at its own cap does not hold up requests for other upstreams).
interface Waiter {
  key: string;
  resolve: (release: () => void) => void;
}

export class Slots {
  private active = 0;
  private readonly perKey = new Map<string, number>();
  private readonly queue: Waiter[] = [];

  constructor(
    private readonly max: number,
    private readonly maxPerKey: number,
  ) {}

  /** Fills waiting for a slot. */
  get queued(): number {
    return this.queue.length;
  }

  /** Resolves with a release function once a slot for `key` (the upstream) is free. */
  acquire(key: string): Promise<() => void> {
    return new Promise((resolve) => {
      this.queue.push({ key, resolve });
      this.next();
    });
  }

  private next(): void {
    for (let i = 0; i < this.queue.length && this.active < this.max; ) {
      const w = this.queue[i]!;
      const n = this.perKey.get(w.key) ?? 0;
      if (n >= this.maxPerKey) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.active++;
      this.perKey.set(w.key, n + 1);
      let released = false;
      w.resolve(() => {
        if (released) return;
        released = true;
        this.active--;
        const left = (this.perKey.get(w.key) ?? 1) - 1;
        if (left > 0) this.perKey.set(w.key, left);
        else this.perKey.delete(w.key);
        this.next();
      });
    }
  }
}
