// One upstream download of one blob into a temp file, hashed on the way; any number of readers follow the
// growing file. The fill belongs to the cache, not to a request: a reader that goes away cancels only itself.
import { EventEmitter } from 'node:events';
import type { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { Hasher, parseDigest, type Digest } from '../oci/digest.js';
import type { BlobStore, PartialFile } from '../store/blob-store.js';
import type { Metadata } from '../store/metadata.js';
import { header, type UpstreamResponse } from '../upstream/client.js';
import { bestEffort } from './best-effort.js';

/** Upstream sent bytes that are not the blob: never stored, never the clean end of a response. */
export class DigestMismatchError extends Error {
  override name = 'DigestMismatchError';
}

/** Where a fill's bytes come from: the first response, and how to ask again from an offset after a drop. */
export interface FillSource {
  first: UpstreamResponse;
  resume(offset: number): Promise<UpstreamResponse>;
  /** The size the descriptor promised, when known; a Content-Length that disagrees fails the fill. */
  expectedSize?: number;
  /**
   * A claimed partial download to continue: its first `partial.size` bytes are kept (re-hashed, then checked with
   * the rest) and `first` must be the 206 answer starting there. On a network failure it is kept for next time.
   */
  partial?: PartialFile;
  /** Limits the upstream byte rate (shared by all fills). */
  throttle?: (bytes: number) => Promise<void>;
}

/** The store could not take a new blob; `source` is untouched so the caller can stream it through instead. */
export class StoreUnwritableError extends Error {
  override name = 'StoreUnwritableError';
  /** Set by the one caller that streams `source` through; joined callers must fetch their own. */
  claimed = false;
  constructor(readonly reason: Error, readonly source: FillSource, readonly size: number | undefined) {
    super(`store unwritable: ${reason.message}`);
  }
}

export interface FillDeps {
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  /** How often a dropped upstream connection is resumed with Range before the fill fails. */
  maxResumes: number;
  onUpstreamBytes?: (n: number) => void;
}

const READ_CHUNK = 1 << 20;

export class BlobFill {
  state: 'filling' | 'done' | 'failed' = 'filling';
  written = 0;
  error: Error | undefined;
  readonly settled: Promise<void>;
  private readonly events = new EventEmitter().setMaxListeners(0);
  private readers = 0;
  private handleClosed = false;

  private constructor(
    private readonly deps: FillDeps,
    private readonly source: FillSource,
    readonly digest: Digest,
    /** From upstream's Content-Length; undefined when it sent none. */
    readonly size: number | undefined,
    private readonly handle: fsp.FileHandle,
    private readonly tempPath: string,
    /** Bytes already present from an earlier, interrupted download of the same digest. */
    private readonly resumedFrom: number,
  ) {
    this.written = resumedFrom;
    this.settled = this.run(source.first);
  }

  /** Starts a fill from a 200 response already received for the blob. */
  static async start(deps: FillDeps, source: FillSource, digest: Digest): Promise<BlobFill> {
    const res = source.first;
    const offset = source.partial?.size ?? 0;
    // A resumed download announces the whole size in Content-Range; a fresh one in Content-Length.
    const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(header(res.headers, 'content-range') ?? '');
    const cl = header(res.headers, 'content-length');
    const announced = offset > 0 ? (range ? Number(range[2]) : undefined) : cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
    if (offset > 0 && (res.status !== 206 || !range || Number(range[1]) !== offset)) {
      res.body.destroy();
      await source.partial!.abandon();
      throw new Error(`resume of ${digest} at ${offset} answered ${res.status} ${header(res.headers, 'content-range') ?? ''}`);
    }
    if (announced !== undefined && source.expectedSize !== undefined && announced !== source.expectedSize) {
      res.body.destroy();
      await source.partial?.abandon();
      throw new DigestMismatchError(`upstream size ${announced} != descriptor size ${source.expectedSize}`);
    }
    const size = announced ?? source.expectedSize;
    if (source.partial) return new BlobFill(deps, source, digest, size, source.partial.handle, source.partial.path, offset);
    let temp;
    try {
      temp = await deps.store.createTemp();
    } catch (e) {
      // The caller may still pass the response through (store unwritable): the body stays open for it.
      throw new StoreUnwritableError(e as Error, source, size);
    }
    return new BlobFill(deps, source, digest, size, temp.handle, temp.path, 0);
  }

  private async run(first: UpstreamResponse): Promise<void> {
    try {
      await this.pump(first);
      await this.deps.store.commit(this.tempPath, this.handle, this.digest);
      // Verified and on disk: readers finish either way; without a row, startup reconciliation adopts the file.
      bestEffort(this.deps.log, 'blob row', () => this.deps.meta.putBlob(this.digest, this.written));
      this.state = 'done';
    } catch (e) {
      this.state = 'failed';
      this.error = e as Error;
      this.deps.log.warn({ digest: this.digest, err: this.error.message, bytes: this.written }, 'blob fill failed');
      // A partial cut off by the network is kept for a Range resume; wrong bytes are never kept.
      const keep = this.source.partial !== undefined && !(e instanceof DigestMismatchError);
      if (!keep) await this.deps.store.removeTemp(this.tempPath).catch(() => undefined);
    } finally {
      await this.source.partial?.release().catch(() => undefined);
      this.events.emit('change');
      await this.maybeClose();
    }
  }

  private async pump(first: UpstreamResponse): Promise<void> {
    const algorithm = parseDigest(this.digest)!.algorithm;
    const hasher = new Hasher(algorithm);
    // Bytes kept from an interrupted download are hashed again from disk (cheap next to the network).
    for (let pos = 0; pos < this.resumedFrom; ) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, this.resumedFrom - pos));
      const { bytesRead } = await this.handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error('partial file shorter than recorded');
      hasher.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    if (this.resumedFrom > 0) this.deps.log.info({ digest: this.digest, at: this.resumedFrom }, 'resuming an interrupted download');
    let res = first;
    for (let resumes = 0; ; ) {
      // A full 200 answer to a resume repeats bytes we already have: skip them.
      let skip = res.status === 200 ? this.written : 0;
      let dropped: unknown;
      try {
        for await (const chunk of res.body) {
          let buf = chunk as Buffer;
          if (skip > 0) {
            if (buf.length <= skip) {
              skip -= buf.length;
              continue;
            }
            buf = buf.subarray(skip);
            skip = 0;
          }
          if (this.size !== undefined && this.written + buf.length > this.size) {
            throw new DigestMismatchError(`upstream sent more than the ${this.size} bytes it announced`);
          }
          await this.source.throttle?.(buf.length);
          await this.handle.write(buf, 0, buf.length, this.written);
          hasher.update(buf);
          this.written += buf.length;
          this.deps.onUpstreamBytes?.(buf.length);
          this.events.emit('change');
        }
      } catch (e) {
        if (e instanceof DigestMismatchError) throw e;
        dropped = e;
      }
      const complete = dropped === undefined && (this.size === undefined || this.written === this.size);
      if (complete) break;
      if (++resumes > this.deps.maxResumes) throw (dropped as Error) ?? new Error('upstream body ended early');
      this.deps.log.info({ digest: this.digest, at: this.written, err: (dropped as Error)?.message }, 'resuming blob fill with Range');
      res = await this.source.resume(this.written);
      if (res.status === 206) {
        const cr = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
        if (!cr || Number(cr[1]) !== this.written) {
          res.body.destroy();
          throw new Error(`upstream answered the resume with Content-Range ${header(res.headers, 'content-range')}`);
        }
      } else if (res.status !== 200) {
        await res.body.dump();
        throw new Error(`upstream answered the resume with ${res.status}`);
      }
    }
    if (this.size !== undefined && this.written !== this.size) throw new DigestMismatchError(`size ${this.written} != ${this.size}`);
    const got = hasher.digest();
    if (got !== this.digest) throw new DigestMismatchError(`upstream sent ${got} for ${this.digest}`);
  }

  private async maybeClose(): Promise<void> {
    if (this.state !== 'filling' && this.readers === 0 && !this.handleClosed) {
      this.handleClosed = true;
      await this.handle.close().catch(() => undefined);
    }
  }

  /**
   * A stream of bytes [start, end] that follows the fill. Until the digest is verified, the last byte of the
   * range is held back, so a client can never see a clean end of a response with wrong bytes.
   */
  reader(start = 0, end?: number): Readable {
    // The fill finished (and closed its handle) before this reader came: the CAS file, or the failure.
    if (this.handleClosed) {
      if (this.state === 'done') return this.deps.store.open(this.digest, start, end);
      const failed = new Readable({ read() {} });
      process.nextTick(() => failed.destroy(this.error ?? new Error('fill failed')));
      return failed;
    }
    this.readers++;
    const limit = end !== undefined ? end + 1 : this.size ?? Infinity;
    let pos = start;
    let busy = false;
    let released = false;
    const fill = this;
    const release = (): void => {
      if (released) return;
      released = true;
      fill.events.off('change', onChange);
      fill.readers--;
      void fill.maybeClose();
    };
    const stream = new Readable({
      highWaterMark: READ_CHUNK,
      read() {
        void pump();
      },
      destroy(err, cb) {
        release();
        cb(err);
      },
    });
    const onChange = (): void => {
      if (!busy) void pump();
    };
    this.events.on('change', onChange);
    const pump = async (): Promise<void> => {
      if (busy || stream.destroyed) return;
      busy = true;
      try {
        for (;;) {
          const state = fill.state;
          if (state === 'failed') {
            stream.destroy(fill.error ?? new Error('fill failed'));
            return;
          }
          const end = Math.min(limit, fill.written);
          const avail = state === 'done' ? end : Math.min(end, limit === Infinity ? fill.written : limit - 1);
          if (pos < avail) {
            const want = Math.min(avail - pos, READ_CHUNK);
            const buf = Buffer.allocUnsafe(want);
            const { bytesRead } = await fill.handle.read(buf, 0, want, pos);
            if (stream.destroyed) return;
            pos += bytesRead;
            if (!stream.push(bytesRead === want ? buf : buf.subarray(0, bytesRead))) return;
            continue;
          }
          if (state === 'done') {
            stream.push(null);
            release();
          }
          return;
        }
      } catch (e) {
        stream.destroy(e as Error);
      } finally {
        busy = false;
      }
    };
    return stream;
  }
}
