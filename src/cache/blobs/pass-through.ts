// Pass-through for when the store cannot be written (read-only or full data dir): the upstream body goes to the
// client, hashed on the way; the last byte is held back until size and digest are verified, as for a fill.
import { pipeline, Transform, type TransformCallback } from 'node:stream';
import { Hasher, parseDigest, type Digest } from '../../oci/digest.js';
import { header } from '../../upstream/client.js';
import { DigestMismatchError, type FillSource } from './fill.js';
import type { BlobHandle } from './service.js';

const DISK_ERRORS = new Set(['EROFS', 'ENOSPC', 'EDQUOT', 'EACCES', 'EPERM']);

/** Is this error the store being unwritable (as opposed to a bug or an upstream failure)? */
export function isDiskError(e: unknown): boolean {
  return DISK_ERRORS.has((e as NodeJS.ErrnoException)?.code ?? '');
}

export class VerifyingStream extends Transform {
  private readonly hasher: Hasher;
  private held: Buffer | undefined;
  private seen = 0;

  constructor(private readonly digest: Digest, private readonly size: number | undefined) {
    super({ highWaterMark: 1 << 20 });
    this.hasher = new Hasher(parseDigest(digest)!.algorithm);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (chunk.length === 0) return cb();
    this.seen += chunk.length;
    if (this.size !== undefined && this.seen > this.size) return cb(new DigestMismatchError(`upstream sent more than ${this.size} bytes`));
    this.hasher.update(chunk);
    // Hold back the last byte seen so far: it goes out only once the whole body is verified.
    if (this.held) this.push(this.held);
    this.push(chunk.subarray(0, chunk.length - 1));
    this.held = chunk.subarray(chunk.length - 1);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.size !== undefined && this.seen !== this.size) return cb(new DigestMismatchError(`size ${this.seen} != ${this.size}`));
    const got = this.hasher.digest();
    if (got !== this.digest) return cb(new DigestMismatchError(`upstream sent ${got} for ${this.digest}`));
    if (this.held) this.push(this.held);
    cb();
  }
}

/** Streams an upstream response to one client, verified (last byte held back), without caching it. */
export function passThroughHandle(source: FillSource, size: number | undefined, digest: Digest): BlobHandle {
  const cl = header(source.first.headers, 'content-length');
  const total = size ?? (cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined);
  return {
    size: total,
    outcome: 'pass-through',
    wholeOnly: true,
    open: () => {
      const out = new VerifyingStream(digest, total);
      pipeline(source.first.body, out, () => undefined);
      return out;
    },
    discard: () => source.first.body.destroy(),
  };
}
