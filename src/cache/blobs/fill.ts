// One upstream download of one blob: hashed as it arrives, written to a temp file behind a bounded in-memory
// window, committed to the CAS once verified. Any number of readers follow it. The fill belongs to the cache,
// not to a request: a reader that goes away cancels only itself.
import { EventEmitter } from 'node:events';
import type { promises as fsp } from 'node:fs';
import { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import { BlobVerifier, DigestMismatchError } from '../../oci/verify.js';
import { isDiskError } from '../../store/errors.js';
import { header, type UpstreamResponse } from '../../upstream/client.js';
import { upstreamFault } from '../../upstream/outcomes.js';
import { bestEffort } from '../best-effort.js';
import { checkFillAnswer } from './fill-answer.js';
import { FillCancelledError, OverBudgetError, StoreUnwritableError, type FillDeps, type FillSource } from './fill-contract.js';
import { ChunkWindow } from './window.js';
import { BatchedWrites } from './disk-writes.js';
import { followFill, sendFollowing, type Followed } from './follow.js';
import type { ByteSink } from './handle.js';

const READ_CHUNK = 1 << 20;
/** Bytes received but not yet on disk before the download waits for the disk (backpressure). */
const MAX_UNFLUSHED = 8 << 20;
/** Bytes already on disk that stay in memory for readers a little behind. */
const RETAIN = 4 << 20;

export class BlobFill {
  /** filling -> verified (digest checked: readers may finish) -> done (committed to the CAS); or failed. */
  state: 'filling' | 'verified' | 'done' | 'failed' = 'filling';
  /** Bytes received and hashed (in the window or on disk). */
  received = 0;
  error: Error | undefined;
  readonly settled: Promise<void>;
  private readonly events = new EventEmitter().setMaxListeners(0);
  private readonly window = new ChunkWindow(RETAIN);
  /** The temp file's writes, batched behind the download. */
  private readonly disk: BatchedWrites;
  private readers = 0;
  private handleClosed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private cancelled = false;
  /** The upstream body being read, so a cancel can stop it. */
  private body: UpstreamResponse['body'] | undefined;

  private constructor(
    private readonly deps: FillDeps,
    private readonly source: FillSource,
    readonly digest: Digest,
    /** From upstream's Content-Length (or Content-Range on a resume); undefined when it sent none. */
    readonly size: number | undefined,
    private readonly handle: fsp.FileHandle,
    private readonly tempPath: string,
    /** Bytes already present from an earlier, interrupted download of the same digest (not fetched by this fill). */
    readonly resumedFrom: number,
  ) {
    this.received = resumedFrom;
    this.disk = new BatchedWrites(handle, resumedFrom, () => {
      this.window.trim(this.disk.flushed, this.received);
      this.events.emit('change');
    });
    this.settled = this.run(source.first);
    this.armIdle();
  }

  /** With no reader (none came yet, or the last one left), the fill is cancelled after the grace period. */
  private armIdle(): void {
    const ms = this.deps.idleGraceMs;
    if (ms === undefined || this.readers > 0 || this.state !== 'filling' || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.readers === 0 && this.state === 'filling') this.cancel();
    }, ms).unref();
  }

  private disarmIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Stops the download; what reached the disk stays in partial/ for a later Range resume. */
  cancel(): void {
    if (this.state !== 'filling' || this.cancelled) return;
    this.cancelled = true;
    this.body?.destroy(new FillCancelledError('no reader left'));
  }

  /** Still downloading or committing: a new reader should join it. */
  /** Who delivers this fill's bytes (FillSource.holder). */
  get holder(): string | undefined {
    return this.source.holder;
  }

  get active(): boolean {
    return this.state === 'filling' || this.state === 'verified';
  }
  /** Starts a fill from a 200 response already received for the blob. */
  static async start(deps: FillDeps, source: FillSource, digest: Digest): Promise<BlobFill> {
    const res = source.first;
    const offset = source.partial?.size ?? 0;
    const answer = checkFillAnswer(res, offset, source.expectedSize);
    if (!answer.ok) {
      res.body.destroy();
      await source.partial?.abandon();
      throw answer.why === 'range' ? upstreamFault(502, { digest }, answer.message) : new DigestMismatchError(answer.message);
    }
    const size = answer.size;
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
      // Verified: readers may send their last byte now; the commit below need not delay the client.
      this.state = 'verified';
      this.events.emit('change');
      await this.disk.drain();
      await this.deps.store.commit(this.tempPath, this.handle, this.digest);
      // On disk: readers finish either way; without a row, startup reconciliation adopts the file.
      bestEffort(this.deps.log, 'blob row', () => {
        this.deps.meta.putBlob(this.digest, this.received);
        if (this.source.holder) this.deps.meta.addHolder(this.source.holder, this.digest);
      });
      this.state = 'done';
    } catch (e) {
      this.state = 'failed';
      this.error = this.cancelled ? new FillCancelledError('no reader left') : (e as Error);
      if (this.cancelled) this.deps.log.info({ digest: this.digest, bytes: this.received }, 'blob fill cancelled: no reader left; partial kept');
      else this.deps.log.warn({ digest: this.digest, err: this.error.message, bytes: this.received }, 'blob fill failed');
      await this.disk.settled();
      // A partial cut off by the network is kept (what reached the disk) for a Range resume; wrong bytes never.
      // On a full or read-only disk the partial goes too: it must not keep the disk full for good.
      const keep = this.source.partial !== undefined && !(e instanceof DigestMismatchError || e instanceof OverBudgetError) && !isDiskError(e);
      if (keep) await this.handle.truncate(this.disk.flushed).catch(() => undefined);
      else await this.deps.store.removeTemp(this.tempPath).catch(() => undefined);
    } finally {
      this.disarmIdle();
      this.window.clear();
      await this.source.partial?.release().catch(() => undefined);
      this.events.emit('change');
      await this.maybeClose();
    }
  }

  /** Queues a chunk for the disk; the download waits only when too much is not yet written. */
  private write(buf: Buffer): Promise<void> | undefined {
    const at = this.received;
    this.disk.queue(at, buf);
    this.window.add(at, buf);
    // Only a download ahead of the disk waits (no promise, no microtask per chunk otherwise), and only for the
    // running write: the batch queued behind it is written while the download goes on.
    return this.received + buf.length - this.disk.flushed > MAX_UNFLUSHED ? this.disk.progress() : undefined;
  }

  private async pump(first: UpstreamResponse): Promise<void> {
    const verifier = new BlobVerifier(this.digest, this.size);
    // Bytes kept from an interrupted download are hashed again from disk (cheap next to the network).
    for (let pos = 0; pos < this.resumedFrom; ) {
      const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, this.resumedFrom - pos));
      const { bytesRead } = await this.handle.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) throw new Error('partial file shorter than recorded');
      verifier.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    if (this.resumedFrom > 0) this.deps.log.info({ digest: this.digest, at: this.resumedFrom }, 'resuming an interrupted download');
    let res = first;
    for (let resumes = 0; ; ) {
      // A full 200 answer to a resume repeats bytes we already have: skip them.
      let skip = res.status === 200 ? this.received : 0;
      let dropped: unknown;
      this.body = res.body;
      if (this.cancelled) res.body.destroy();
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
          const max = this.source.maxBytes;
          if (max !== undefined && this.size === undefined && this.received + buf.length > max)
            throw new OverBudgetError(`no size announced, and more than the ${max} bytes the store may take`);
          verifier.update(buf);
          if (this.source.throttle) await this.source.throttle(buf.length);
          const backlog = this.write(buf);
          if (backlog) await backlog;
          this.received += buf.length;
          this.deps.onUpstreamBytes?.(buf.length);
          this.events.emit('change');
        }
      } catch (e) {
        // Wrong bytes and a disk that refuses them are not the network: no resume.
        if (e instanceof DigestMismatchError || e instanceof OverBudgetError || isDiskError(e) || e === this.disk.error) throw e;
        dropped = e;
      }
      if (this.cancelled) throw new FillCancelledError('no reader left');
      const complete = dropped === undefined && (this.size === undefined || this.received === this.size);
      if (complete) break;
      if (++resumes > this.deps.maxResumes) throw (dropped as Error) ?? new Error('upstream body ended early');
      this.deps.log.info({ digest: this.digest, at: this.received, err: (dropped as Error)?.message }, 'resuming blob fill with Range');
      res = await this.source.resume(this.received);
      if (res.status === 206) {
        const cr = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
        if (!cr || Number(cr[1]) !== this.received) {
          res.body.destroy();
          throw new Error(`upstream answered the resume with Content-Range ${header(res.headers, 'content-range')}`);
        }
      } else if (res.status !== 200) {
        await res.body.dump();
        throw new Error(`upstream answered the resume with ${res.status}`);
      }
    }
    verifier.finish();
  }

  private async maybeClose(): Promise<void> {
    if (!this.active && this.readers === 0 && !this.handleClosed) {
      this.handleClosed = true;
      await this.handle.close().catch(() => undefined);
    }
  }

  /** Bytes [start, end] as they arrive; see follow.ts for the hold-back rule. */
  reader(start = 0, end?: number): Readable {
    // The fill finished (and closed its handle) before this reader came: the CAS file, or the failure.
    if (this.handleClosed) {
      if (this.state === 'done') return this.deps.store.open(this.digest, start, end);
      const failed = new Readable({ read() {} });
      process.nextTick(() => failed.destroy(this.error ?? new Error('fill failed')));
      return failed;
    }
    return followFill(this.follower(), start, end);
  }

  /** Bytes [start, end] by sendfile(2) from the temp file as they reach the disk (sink.sendFile required). */
  async send(sink: ByteSink, start: number, end: number): Promise<void> {
    if (!sink.sendFile) throw new Error('send() needs a sink that takes sendfile');
    if (!this.handleClosed) return sendFollowing(this.follower(), sink as ByteSink & Required<Pick<ByteSink, 'sendFile'>>, start, end);
    if (this.state !== 'done') throw this.error ?? new Error('fill failed');
    const fh = await this.deps.store.openHandle(this.digest);
    if (!fh) throw new Error('the committed blob is gone');
    await sink.sendFile(fh.fd, start, end).finally(() => fh.close());
  }

  /** A new reader of this fill (counted until it calls release()). */
  private follower(): Followed {
    this.readers++;
    this.disarmIdle();
    const fill = this;
    return {
      get state() {
        return fill.state;
      },
      get error() {
        return fill.error;
      },
      get size() {
        return fill.size;
      },
      get received() {
        return fill.received;
      },
      get flushed() {
        return fill.disk.flushed;
      },
      fd: this.handle.fd,
      memory: (pos, until) => this.window.slice(pos, until),
      read: async (buf, pos) => (await this.handle.read(buf, 0, Math.min(buf.length, Math.max(0, this.disk.flushed - pos)), pos)).bytesRead,
      onChange: (fn) => {
        this.events.on('change', fn);
        return () => this.events.off('change', fn);
      },
      release: () => {
        this.readers--;
        this.armIdle();
        void this.maybeClose();
      },
    };
  }
}
