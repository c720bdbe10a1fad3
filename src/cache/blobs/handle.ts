// What the blob service hands to http/ (a handle on bytes to send) and what it asks of the foreign-layer policy.
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Target } from '../../upstream/registries.js';
import type { FillSource } from './fill-contract.js';

export type BlobOutcome = 'hit' | 'miss' | 'coalesced' | 'redirect' | 'foreign-fetch' | 'pass-through';

export interface BlobHandle {
  /** Total size; undefined only for a miss whose upstream sent no Content-Length. */
  size: number | undefined;
  outcome: BlobOutcome;
  /** When set, answer 302 to this URL instead of sending bytes (foreign layers whose policy is redirect). */
  redirect?: string;
  /** Bytes [start, end] inclusive. Call at most once; or discard() instead. */
  open(start?: number, end?: number): Readable;
  /** Releases what the handle holds when the body will not be sent after all. */
  discard?(): void;
  /** A fill that continues an interrupted download: its first resumedFrom bytes come from disk, not the upstream. */
  resumedFrom?: number;
  /** The body can only be sent whole (pass-through): a Range header is ignored (RFC 9110 allows it). */
  wholeOnly?: boolean;
  /**
   * A committed blob: bytes [start, end] written to `sink` in large chunks read into reused buffers, no stream
   * objects in between (the warm path). Resolves when the last chunk has left; rejects when the client went
   * away or the file failed. Call at most once, instead of open().
   */
  send?(sink: ByteSink, start: number, end: number): Promise<void>;
  /** send() needs a sink with sendFile (a fill followed from its temp file); without one, use open(). */
  sendNeedsZeroCopy?: boolean;
  /** A committed blob: its path below the CAS root (`sha256/ab/abcd…`), for X-Accel-Redirect. */
  casPath?: string;
}

/** Where send() writes: `done` fires once the chunk has been handed to the kernel (its buffer may be reused). */
export interface ByteSink {
  write(chunk: Buffer, done: (err?: Error | null) => void): void;
  /** The client has gone (or the response failed): stop. */
  readonly closed: boolean;
  /** When set: bytes [start, end] of an open file, sent by the kernel (sendfile(2)); used instead of write(). */
  sendFile?(fd: number, start: number, end: number): Promise<void>;
  /** Calls fn once when the client goes away (or the response closes). */
  onClose?(fn: () => void): void;
}

/** A descriptor with `urls` or a foreign/non-distributable media type, as recorded from a manifest. */
export interface ForeignDescriptor {
  size: number;
  mediaType: string;
  urls: string[];
  /** Foreign/non-distributable media type: never asked of the upstream registry. */
  foreign: boolean;
}

/** Starts (or joins) the one fill of a digest from a source other than the upstream registry. */
export type FillStarter = (makeSource: () => Promise<FillSource>) => Promise<BlobHandle>;

/** Foreign-layer policy (foreign/layers.ts): how to serve what the upstream registry does not hold. */
export interface ForeignHooks {
  lookup(target: Target, digest: Digest): ForeignDescriptor | undefined;
  /**
   * GET: a redirect handle, or a handle on a verified fill from an allowed URL; else throws an OciError. `fill`
   * undefined: the store cannot take this blob now (budget, free disk): allowed URLs are streamed through, verified.
   */
  resolve(target: Target, digest: Digest, d: ForeignDescriptor, fill: FillStarter | undefined): Promise<BlobHandle>;
  /** HEAD: size from metadata, without fetching; throws an OciError when the policy would refuse the GET. */
  stat(target: Target, digest: Digest, d: ForeignDescriptor): Promise<{ size: number; outcome: BlobOutcome }>;
}
