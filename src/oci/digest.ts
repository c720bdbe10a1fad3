// Digest parsing/validation (sha256, sha512) and incremental hashing, per the OCI image-spec "Digests" section.
import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.js';

export type Algorithm = 'sha256' | 'sha512';
export type Digest = string & { readonly __digest: unique symbol };

const HEX_LENGTH: Record<Algorithm, number> = { sha256: 64, sha512: 128 };
// Registered algorithms only; the spec's general grammar allows others, but we can verify only these.
const DIGEST_RE = /^(sha256|sha512):([a-f0-9]+)$/;

export interface ParsedDigest {
  algorithm: Algorithm;
  hex: string;
  digest: Digest;
}

/** Parses a digest string; returns undefined when it is not a verifiable sha256/sha512 digest. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const m = DIGEST_RE.exec(value);
  if (!m) return undefined;
  const algorithm = m[1] as Algorithm;
  const hex = m[2]!;
  if (hex.length !== HEX_LENGTH[algorithm]) return undefined;
  return { algorithm, hex, digest: value as Digest };
}

export function isDigest(value: string): value is Digest {
  return parseDigest(value) !== undefined;
}

/** Incremental hasher for the algorithm of an expected digest. */
export class Hasher {
  private readonly hash: Hash;
  constructor(readonly algorithm: Algorithm) {
    this.hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }
  /** Returns the digest; the hasher cannot be used afterwards. */
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}` as Digest;
  }
}

export function digestOf(bytes: Uint8Array, algorithm: Algorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}

/** A digest from client or operator input, or DIGEST_INVALID. */
export function requireDigest(value: string): Digest {
  const d = parseDigest(value);
  if (!d) throw new OciError('DIGEST_INVALID', { digest: value });
  return d.digest;
}
