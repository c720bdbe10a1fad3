// A reader that follows a fill: bytes come from the in-memory window while it keeps up, else from the temp file;
// or, on a socket that takes sendfile(2), straight from the temp file as it reaches the disk. Until the digest is
// verified the last byte of its range is held back, so a client can never see a clean end of a response with
// wrong bytes. It pulls: bytes are read only when its consumer asks for them (read()), and never past push()
// returning false, so a client slower than the upstream holds at most one chunk plus the stream's high-water
// mark, not the layer (by sendfile: nothing; the kernel sends as the socket takes it).
import { Readable } from 'node:stream';
import type { ByteSink } from './handle.js';

/** What a reader needs of its fill. */
export interface Followed {
  readonly state: 'filling' | 'verified' | 'done' | 'failed';
  readonly error: Error | undefined;
  readonly size: number | undefined;
  readonly received: number;
  /** Bytes at pos..until from memory, if the window still has them. */
  memory(pos: number, until: number): Buffer | undefined;
  /** Reads from the file (only below what has been flushed). */
  read(buf: Buffer, pos: number): Promise<number>;
  /** Bytes written to the temp file, and its descriptor (valid until release()). */
  readonly flushed: number;
  readonly fd: number;
  onChange(fn: () => void): () => void;
  release(): void;
}

const READ_CHUNK = 1 << 20;

export function followFill(fill: Followed, start: number, end: number | undefined): Readable {
  const limit = end !== undefined ? end + 1 : (fill.size ?? Infinity);
  let pos = start;
  let busy = false;
  /** The consumer asked for bytes (read()) and has not been given any since, or push() has not said stop. */
  let wanted = false;
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    off();
    fill.release();
  };
  const stream = new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      wanted = true;
      void pump();
    },
    destroy(err, cb) {
      release();
      cb(err);
    },
  });
  // New bytes are sent only to a reader that asked for them; a failure ends every reader at once.
  const off = fill.onChange(() => {
    if (!busy && (wanted || fill.state === 'failed')) void pump();
  });
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
        const verified = state === 'verified' || state === 'done';
        const upto = Math.min(limit, fill.received);
        // Unknown size (no Content-Length): the last byte received so far may be the blob's last.
        const avail = verified ? upto : Math.min(upto, (limit === Infinity ? fill.received : limit) - 1);
        if (pos < avail) {
          let chunk = fill.memory(pos, avail);
          if (!chunk) {
            const buf = Buffer.allocUnsafe(Math.min(avail - pos, READ_CHUNK));
            const n = await fill.read(buf, pos);
            if (stream.destroyed) return;
            if (n === 0) throw new Error('temp file shorter than expected');
            chunk = n === buf.length ? buf : buf.subarray(0, n);
          }
          pos += chunk.length;
          if (!stream.push(chunk)) {
            wanted = false;
            return;
          }
          continue;
        }
        if (verified && pos >= upto) {
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

/** While the fill runs, bytes on disk are sent once this many have gathered, or this long after the last send. */
const SEND_MIN = 1 << 20;
const SEND_AFTER_MS = 100;

/**
 * Bytes [start, end] of a fill by sink.sendFile, each from the temp file once it is on disk; the hold-back rule
 * as above. Resolves when the last byte has been handed to the kernel; rejects when the fill failed or the client
 * went away.
 */
export async function sendFollowing(fill: Followed, sink: ByteSink & Required<Pick<ByteSink, 'sendFile'>>, start: number, end: number): Promise<void> {
  const limit = end + 1;
  let pos = start;
  let sentAt = 0;
  let wake: (() => void) | undefined;
  const off = fill.onChange(() => wake?.());
  sink.onClose?.(() => wake?.());
  try {
    for (;;) {
      if (fill.state === 'failed') throw fill.error ?? new Error('fill failed');
      if (sink.closed) throw new Error('client closed the connection');
      const verified = fill.state === 'verified' || fill.state === 'done';
      const onDisk = Math.min(limit, fill.flushed);
      const avail = verified ? onDisk : Math.min(onDisk, limit - 1);
      if (pos >= limit) return;
      if (avail > pos && (avail - pos >= SEND_MIN || avail >= limit - 1 || performance.now() - sentAt >= SEND_AFTER_MS)) {
        await sink.sendFile(fill.fd, pos, avail - 1);
        pos = avail;
        sentAt = performance.now();
        continue;
      }
      // Bytes on disk but too few to send yet go at SEND_AFTER_MS even if nothing changes (an upstream that paused).
      const due = avail > pos ? setTimeout(() => wake?.(), SEND_AFTER_MS - (performance.now() - sentAt)) : undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      clearTimeout(due);
    }
  } finally {
    wake = undefined;
    off();
    fill.release();
  }
}
