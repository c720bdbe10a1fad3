// Cache hits: small committed blobs from memory, others from an open file handle; which digests are being read.
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { BlobHandle } from './handle.js';

const SMALL_BLOB_MAX = 256 << 10;
const SMALL_CACHE_BYTES = 64 << 20;

export class Hits {
  /** Small committed blobs, verified bytes as on disk (lru-cache: bounded by bytes). */
  private readonly small = new LRUCache<Digest, Buffer>({ maxSize: SMALL_CACHE_BYTES, sizeCalculation: (b) => b.length || 1 });
  /** Digests whose committed file is being streamed right now: never evicted under a reader. */
  private readonly reading = new Map<Digest, number>();

  constructor(
    private readonly store: BlobStore,
    private readonly onAccess?: (digest: Digest) => void,
  ) {}

  isReading(digest: Digest): boolean {
    return this.reading.has(digest);
  }

  /** Drops an evicted blob from memory. */
  forget(digest: Digest): void {
    this.small.delete(digest);
  }

  private memoryHit(digest: Digest, bytes: Buffer): BlobHandle {
    this.onAccess?.(digest);
    return { size: bytes.length, outcome: 'hit', open: (start = 0, end = bytes.length - 1) => Readable.from([bytes.subarray(start, end + 1)]) };
  }

  /**
   * A hit, or undefined when the file is gone or has another size. Files are served from an open handle, so an
   * eviction between lookup and read cannot cut the response.
   */
  async open(digest: Digest, size: number): Promise<BlobHandle | undefined> {
    const cached = this.small.get(digest);
    if (cached) return this.memoryHit(digest, cached);
    const fh = await this.store.openHandle(digest);
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
    this.onAccess?.(digest);
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
}
