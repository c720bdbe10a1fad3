// Whether a new blob may be cached now: within the storage budget, room on the disk for it, and not in the
// pass-through period that follows a write the store refused (full or read-only disk).
import type { Logger } from 'pino';
import type { BlobStore } from '../../store/blob-store.js';

/** Free disk a new blob must leave (metadata, other fills' writes). */
const ROOM_MARGIN = 8 << 20;
/** After the store refused a write, misses pass through for this long before a fill is tried again. */
const PASS_THROUGH_MS = 30_000;

export interface AdmissionDeps {
  store: BlobStore;
  log: Logger;
  /** A blob larger than this (the storage budget) is streamed through, never cached. */
  maxBlobBytes?: number;
  /** The store ran out of room (or refused a write): partials and eviction may make some. */
  onStoreFull?: () => void;
  now?: () => number;
}

export class Admission {
  private passThroughUntil = 0;
  /** Why the store refused the last write, while misses pass through. */
  private refusal: { error: string; full: boolean } | undefined;

  constructor(private readonly deps: AdmissionDeps) {}

  /** Undefined while the store takes new blobs; else why not. */
  get refused(): string | undefined {
    return this.refusal?.error;
  }

  /** Misses are passed through without caching (the store refused a write less than 30 s ago). */
  get passingThrough(): boolean {
    return (this.deps.now ?? Date.now)() < this.passThroughUntil;
  }

  /** Is there room for a new blob of this size: within the budget, and free disk for it plus a margin? */
  async room(size: number): Promise<{ ok: true } | { ok: false; why: string; disk: boolean }> {
    if (this.deps.maxBlobBytes !== undefined && size > this.deps.maxBlobBytes)
      return { ok: false, why: `blob of ${size} bytes is larger than the storage budget (${this.deps.maxBlobBytes})`, disk: false };
    const free = await this.deps.store.freeBytes();
    if (free !== undefined && free < size + ROOM_MARGIN) return { ok: false, why: `blob of ${size} bytes does not fit in ${free} bytes free`, disk: true };
    return { ok: true };
  }

  /** The most a blob of unannounced size may grow to: the budget, and the free disk less the margin (undefined: no limit known). */
  async capUnknown(): Promise<number | undefined> {
    const free = await this.deps.store.freeBytes();
    const caps = [this.deps.maxBlobBytes, free !== undefined ? Math.max(0, free - ROOM_MARGIN) : undefined].filter((n) => n !== undefined);
    return caps.length > 0 ? Math.min(...caps) : undefined;
  }

  /**
   * While passing through: after a full disk, caching resumes as soon as there is room for the blob asked for (a
   * read-only disk is tried again when the period ends). True when it resumed.
   */
  async resumeFor(digest: string, size: number | undefined): Promise<boolean> {
    if (size === undefined || !this.refusal?.full || !(await this.room(size)).ok) return false;
    this.deps.log.info({ digest, size }, 'store has room again: caching resumes');
    this.passThroughUntil = 0;
    this.refusal = undefined;
    return true;
  }

  /** A commit went through: the store is no longer reported as refusing (the pass-through period runs out as set). */
  committed(): void {
    this.refusal = undefined;
  }

  /** The store refused a write: every miss passes through for a while. */
  refuse(e: Error): void {
    this.deps.log.warn({ err: e.message }, 'store unwritable: passing blobs through without caching');
    this.passThroughUntil = (this.deps.now ?? Date.now)() + PASS_THROUGH_MS;
    const code = (e as NodeJS.ErrnoException).code;
    this.refusal = { error: e.message, full: code === 'ENOSPC' || code === 'EDQUOT' };
    this.deps.onStoreFull?.();
  }
}
