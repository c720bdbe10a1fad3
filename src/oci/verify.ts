// Verifying a blob while its bytes stream: hashed as they pass, capped at the descriptor's size, and checked at
// the end. VerifyingStream adds the hold-back: the last byte goes out only once size and digest matched, so a
// client can never see the clean end of a response with wrong bytes. Every path that streams unverified bytes
// (a fill, a pass-through, a foreign fetch) uses these two.
import { Transform, type TransformCallback } from 'node:stream';
import { Hasher, parseDigest, type Digest } from './digest.js';

/** Bytes that are not the blob they claim to be: never stored, never the clean end of a response. */
export class DigestMismatchError extends Error {
  override name = 'DigestMismatchError';
}

/** Hashes and counts one blob's bytes as they pass (in order, across resumed responses). */
export class BlobVerifier {
  received = 0;
  private readonly hasher: Hasher;

  constructor(
    readonly digest: Digest,
    /** The size the descriptor or upstream announced; undefined when unknown (only the digest is checked). */
    readonly size: number | undefined,
    /** Who sent the bytes, for the error messages ("upstream", a URL). */
    private readonly source = 'upstream',
  ) {
    this.hasher = new Hasher(parseDigest(digest)!.algorithm);
  }

  /** Throws DigestMismatchError when `buf` goes past the announced size. */
  update(buf: Buffer): void {
    if (this.size !== undefined && this.received + buf.length > this.size) {
      throw new DigestMismatchError(`${this.source} sent more than the ${this.size} bytes it announced`);
    }
    this.hasher.update(buf);
    this.received += buf.length;
  }

  /** Throws DigestMismatchError unless exactly the announced size arrived and it hashes to the digest. */
  finish(): void {
    if (this.size !== undefined && this.received !== this.size) throw new DigestMismatchError(`size ${this.received} != ${this.size}`);
    const got = this.hasher.digest();
    if (got !== this.digest) throw new DigestMismatchError(`${this.source} sent ${got} for ${this.digest}`);
  }
}

/**
 * Passes bytes [start, end] (default: all) of a blob's whole body through, verifying the whole body; the last
 * byte it would emit is held back until the body checked out. On a mismatch it errors instead of ending.
 */
export class VerifyingStream extends Transform {
  private readonly verifier: BlobVerifier;
  private held: Buffer | undefined;
  private pos = 0;

  constructor(
    digest: Digest,
    size: number | undefined,
    private readonly range: { start: number; end: number } = { start: 0, end: Infinity },
    source?: string,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.verifier = new BlobVerifier(digest, size, source);
  }

  /** Bytes of the body seen so far (in or out of the range). */
  get received(): number {
    return this.verifier.received;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.verifier.update(chunk);
    } catch (e) {
      return cb(e as Error);
    }
    const at = this.pos;
    this.pos += chunk.length;
    const from = Math.max(this.range.start - at, 0);
    const to = Math.min(this.range.end + 1 - at, chunk.length);
    if (to > from) {
      const part = chunk.subarray(from, to);
      if (this.held) this.push(this.held);
      // Hold back the last byte seen so far: it goes out only once the whole body is verified.
      if (part.length > 1) this.push(part.subarray(0, part.length - 1));
      this.held = part.subarray(part.length - 1);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.verifier.finish();
    } catch (e) {
      return cb(e as Error);
    }
    if (this.held) this.push(this.held);
    cb();
  }
}
