// A fill's writes to its temp file: chunks queued behind the download and written in batches (one pwritev for all
// that arrived while the previous write ran); how far the file is written, and the first write error.
import type { promises as fsp } from 'node:fs';

export class BatchedWrites {
  /** Bytes of the file written so far. */
  flushed: number;
  /** The first failed write; no write runs after it. */
  error: Error | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Chunks queued but not yet handed to a write, starting at file offset pendingAt. */
  private pending: Buffer[] = [];
  private pendingAt = 0;
  /** Resolved when the running write ends (see progress()). */
  private waiters: (() => void)[] = [];
  private writing = false;

  /** `onFlushed` runs after every write that moved `flushed`. */
  constructor(
    private readonly handle: fsp.FileHandle,
    from: number,
    private readonly onFlushed: () => void,
  ) {
    this.flushed = from;
  }

  /** Queues `buf` for file offset `at` (right after the previous chunk). Throws the write error, if any. */
  queue(at: number, buf: Buffer): void {
    if (this.error) throw this.error;
    if (this.pending.length === 0) {
      this.pendingAt = at;
      this.chain = this.chain.then(() => this.flushPending());
    }
    this.pending.push(buf);
  }

  /** Resolves when every queued chunk is written; rejects with the write error. */
  async drain(): Promise<void> {
    await this.chain;
    if (this.error) throw this.error;
  }

  /**
   * Resolves when the write running now ends (at once when none runs), so a download ahead of the disk can go on
   * while the batch queued behind that write is written: the disk never waits for the download to refill.
   * Never rejects: the error comes from the next queue() or drain().
   */
  progress(): Promise<void> {
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Resolves when no write runs any more (never rejects). */
  settled(): Promise<void> {
    return this.chain;
  }

  private async flushPending(): Promise<void> {
    let bufs = this.pending;
    let at = this.pendingAt;
    this.pending = [];
    if (this.error) return;
    try {
      while (bufs.length > 0) {
        this.writing = true;
        const { bytesWritten } = await this.handle.writev(bufs, at);
        this.writing = false;
        at += bytesWritten;
        this.flushed = at;
        this.onFlushed();
        this.wake();
        // A short write (rare on files): continue with what is left.
        let skip = bytesWritten;
        while (bufs.length > 0 && skip >= bufs[0]!.length) skip -= bufs.shift()!.length;
        if (skip > 0) bufs = [bufs[0]!.subarray(skip), ...bufs.slice(1)];
        if (bytesWritten === 0 && bufs.length > 0) throw new Error('the disk took no bytes');
      }
    } catch (e) {
      this.writing = false;
      this.error = e as Error;
      this.wake();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
