// Access times for eviction's least-recently-used order: batched in memory, written now and then, never per request.
import type { Digest } from '../oci/digest.js';
import { isStoreWriteError } from '../store/errors.js';
import type { Metadata } from '../store/metadata.js';

export class AccessTracker {
  private pending = new Map<Digest, number>();
  constructor(
    private readonly meta: Metadata,
    private readonly now: () => number,
  ) {}
  touch(digest: Digest): void {
    this.pending.set(digest, this.now());
  }
  /** Writes the batch; a failed write (read-only or full store) drops it: access times are advisory. */
  flush(): boolean {
    if (this.pending.size === 0) return true;
    const batch = this.pending;
    this.pending = new Map();
    try {
      this.meta.touch(batch);
      return true;
    } catch (e) {
      if (!isStoreWriteError(e)) throw e;
      return false;
    }
  }
}
