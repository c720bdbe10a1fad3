// The background scrub: every `scrub.every`, re-hash each cached blob at `scrub.rate` bytes per second and remove
// the ones whose bytes no longer match their digest (the next pull fetches them again, verified).
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import type { BlobStore } from '../store/blob-store.js';
import type { Metadata } from '../store/metadata.js';
import { verifyStore, type VerifyResult } from '../store/reconcile.js';
import { RateLimiter } from '../upstream/rate-limit.js';

export interface ScrubDeps {
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  /** ms between passes (after start, and after each pass ended). */
  everyMs: number;
  bytesPerSecond: number;
  /** A corrupt blob was removed: drop it from memory caches. */
  forget(digest: Digest): void;
  onPass?(r: VerifyResult): void;
  onBytes?(n: number): void;
}

export class Scrubber {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly deps: ScrubDeps) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.abort.signal.aborted) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().then(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.deps.everyMs);
    this.timer.unref();
  }

  /** One pass over every cached blob. */
  async pass(): Promise<VerifyResult | undefined> {
    const { store, meta, log } = this.deps;
    const limiter = new RateLimiter(this.deps.bytesPerSecond);
    const started = Date.now();
    try {
      const r = await verifyStore(store, meta, {
        repair: true,
        signal: this.abort.signal,
        throttle: async (n) => {
          await limiter.take(n);
          this.deps.onBytes?.(n);
        },
        onProgress: (digest, ok) => {
          if (ok) return;
          this.deps.forget(digest);
          log.warn({ digest }, 'scrub: cached blob does not match its digest: removed (the next pull fetches it again)');
        },
      });
      log.info({ checked: r.checked, bytes: r.bytes, corrupt: r.corrupt.length, ms: Date.now() - started }, 'scrub pass finished');
      this.deps.onPass?.(r);
      return r;
    } catch (e) {
      log.error({ err: (e as Error).message }, 'scrub pass failed');
      return undefined;
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
