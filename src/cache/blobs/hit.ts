// Cache hits: small committed blobs from memory, others from an open file handle; which digests are being read.
import type { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { digestOf, parseDigest, type Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { BlobHandle, ByteSink } from './handle.js';

const SMALL_BLOB_MAX = 256 << 10;
const SMALL_CACHE_BYTES = 64 << 20;
/** One read / one socket write of a warm blob (measured: larger chunks cost fewer syscalls and wakeups). */
export const SEND_CHUNK = 512 << 10;
/** Buffers kept for reuse between responses (each response holds two while it runs). */
const POOL_MAX = 16;

/** Reused read buffers: no allocation (and no fresh page faults) per chunk, bounded memory when idle. */
const pool: Buffer[] = [];
const takeBuffer = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(SEND_CHUNK);
const giveBuffer = (b: Buffer): void => void (pool.length < POOL_MAX && pool.push(b));

/**
 * Bytes [start, end] of an open file to `sink`, double-buffered: the next chunk is read while the previous one
 * is being written; a buffer is read into again only once the kernel has taken its bytes.
 */
export async function sendFile(fh: fsp.FileHandle, sink: ByteSink, start: number, end: number, onChunk?: (n: number) => void): Promise<void> {
  const bufs = [takeBuffer(), takeBuffer()];
  const writes: (Promise<void> | undefined)[] = [undefined, undefined];
  let failed: Error | undefined;
  try {
    let pos = start;
    for (let i = 0; pos <= end; i ^= 1) {
      if (writes[i]) await writes[i];
      if (failed) throw failed;
      if (sink.closed) throw new Error('client closed the connection');
      const { bytesRead } = await fh.read(bufs[i]!, 0, Math.min(SEND_CHUNK, end + 1 - pos), pos);
      if (bytesRead === 0) throw new Error('blob file is shorter than its recorded size');
      pos += bytesRead;
      const chunk = bufs[i]!.subarray(0, bytesRead);
      writes[i] = new Promise<void>((resolve) =>
        sink.write(chunk, (err) => {
          if (err) failed ??= err;
          resolve();
        }),
      );
      onChunk?.(bytesRead);
    }
    await Promise.all(writes);
    if (failed) throw failed;
  } finally {
    // Only buffers the kernel is done with go back to the pool (a write that never called back keeps its buffer).
    await Promise.all(writes.map((w, i) => w?.then(() => giveBuffer(bufs[i]!)) ?? giveBuffer(bufs[i]!)));
  }
}

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
   * eviction between lookup and read cannot cut the response. `pathOnly`: the file will be sent by nginx
   * (X-Accel-Redirect, which holds its own descriptor), so one stat replaces open + fstat + close.
   */
  async open(digest: Digest, size: number, pathOnly = false): Promise<BlobHandle | undefined> {
    const cached = this.small.get(digest);
    if (cached) return this.memoryHit(digest, cached);
    if (pathOnly && size > SMALL_BLOB_MAX) {
      if ((await this.store.fileSize(digest)) !== size) return undefined;
      this.onAccess?.(digest);
      return { size, outcome: 'hit', casPath: this.store.paths.casPath(digest), open: (start, end) => this.store.open(digest, start, end) };
    }
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
      // Re-hashed once as it enters memory (cheap at this size): a corrupt file is treated as missing and fetched again.
      if (digestOf(bytes, parseDigest(digest)!.algorithm) !== digest) return undefined;
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
      void fh.close().catch(() => undefined);
    };
    this.onAccess?.(digest);
    return {
      size,
      outcome: 'hit',
      casPath: this.store.paths.casPath(digest),
      open: (start, end) => {
        const stream = fh.createReadStream({ start, end, highWaterMark: SEND_CHUNK, autoClose: false });
        stream.once('close', release);
        return stream;
      },
      send: (sink, start, end) => (sink.sendFile ? sink.sendFile(fh.fd, start, end) : sendFile(fh, sink, start, end)).finally(release),
      discard: release,
    };
  }
}
