// Sends a response, streaming Node bodies straight to the socket when running under @hono/node-server.
import { Readable } from 'node:stream';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { ByteSink } from '../cache/blobs/handle.js';
import { plainSocketFd, sendfileUnavailable, zeroCopy } from '../sendfile/native.js';
import { nodeOf, type Env } from './middleware.js';

const EMPTY = Buffer.alloc(0);

export const API_VERSION_HEADER = { 'docker-distribution-api-version': 'registry/2.0' } as const;

/**
 * Aborts when the client goes away before its response was sent. Under node-server from the Node response
 * (c.req.raw.signal would build the whole web Request: a measurable share of a hit's CPU).
 */
export function clientSignal(c: Context<Env>): AbortSignal {
  const out = nodeOf(c).outgoing;
  if (!out) return c.req.raw.signal;
  const ac = new AbortController();
  out.once('close', () => {
    if (!out.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * Under node-server the stream is piped to the socket (no web-stream hop: the warm path must run at disk
 * speed); in app.request() tests it becomes a web stream. A stream error destroys the socket, so a client
 * sees a truncated response, never a clean end.
 */
export function sendStream(c: Context<Env>, status: number, headers: Record<string, string>, body: Readable, onChunk: (bytes: number) => void): Response {
  // Counted as it flows, so the access log (written on socket close) sees the bytes actually sent.
  body.on('data', (chunk: Buffer) => onChunk(chunk.length));
  const out = nodeOf(c).outgoing;
  if (out) {
    c.set('streamed', true);
    out.writeHead(status, { ...API_VERSION_HEADER, ...headers });
    // pipe plus two listeners instead of pipeline(): pipeline puts six 'close' listeners on the response, which
    // with node-server's, the connection tracker's and the access log's passed Node's limit of ten (a warning).
    body.pipe(out);
    body.once('error', (e) => out.destroy(e));
    const stop = (): void => {
      if (!body.readableEnded) body.destroy();
    };
    // A client gone before this answer started closed the response already: its 'close' will not come again.
    if (out.destroyed) stop();
    else out.once('close', stop);
    return RESPONSE_ALREADY_SENT;
  }
  return new Response(Readable.toWeb(body) as ReadableStream, { status, headers: { ...API_VERSION_HEADER, ...headers } });
}

/** The response can be sent by sendfile(2): config allows it, the addon is loaded, the socket is plain TCP. */
export function zeroCopyUsable(c: Context<Env>, sendfile: boolean | undefined): boolean {
  return sendfile === true && sendfileUnavailable() === undefined && plainSocketFd(nodeOf(c).outgoing?.socket) !== undefined;
}

/**
 * The warm path under node-server: headers, then `send` writes the body. On a plain TCP socket with `sendfile`
 * on (and the addon built) the sink can hand a file range to the kernel (sendfile(2), zero-copy); otherwise it
 * takes large chunks, one socket write each, buffers reused once the kernel took them. Any failure destroys the
 * socket, so a client sees a truncated response, never a clean end. undefined when not under node-server (the
 * caller streams).
 */
export function sendDirect(
  c: Context<Env>,
  status: number,
  headers: Record<string, string>,
  send: (sink: ByteSink) => Promise<void>,
  onChunk: (bytes: number) => void,
  /** zeroCopyUsable() said yes: the sink gets sendFile. */
  zeroCopyOk = false,
): Response | undefined {
  const out = nodeOf(c).outgoing;
  if (!out) return undefined;
  c.set('streamed', true);
  out.writeHead(status, { ...API_VERSION_HEADER, ...headers });
  // Every write's callback fires exactly once, also when the socket closes before Node calls it back.
  const pending = new Set<(err?: Error | null) => void>();
  out.once('close', () => {
    for (const done of pending) done(new Error('client closed the connection'));
    pending.clear();
  });
  const track = (done: (err?: Error | null) => void): ((err?: Error | null) => void) => {
    const once = (err?: Error | null): void => {
      if (pending.delete(once)) done(err);
    };
    pending.add(once);
    return once;
  };
  const sink: ByteSink = {
    write(chunk, done) {
      onChunk(chunk.length);
      out.write(chunk, track(done));
    },
    get closed() {
      return out.destroyed || out.writableEnded;
    },
  };
  sink.onClose = (fn) => void track(() => fn());
  if (zeroCopyOk) {
    // The headers go now (a client following a miss sees them at once) and must be in the kernel before the body:
    // flush them, then wait for an empty write behind them.
    out.flushHeaders();
    const headersOut = new Promise<void>((resolve, reject) => {
      if (!out.socket) return reject(new Error('client closed the connection'));
      out.socket.write(
        EMPTY,
        track((err) => (err ? reject(err) : resolve())),
      );
    });
    headersOut.catch(() => undefined);
    sink.sendFile = async (fd, start, end) => {
      await headersOut;
      const sock = out.socket;
      if (!sock) throw new Error('client closed the connection');
      const z = zeroCopy(sock, fd, start, end, onChunk);
      if (!z) throw new Error('client closed the connection');
      c.get('info').sendfile = true;
      const stop = track((err) => z.cancel(err ?? new Error('client closed the connection')));
      await z.done.finally(() => pending.delete(stop));
    };
  }
  send(sink).then(
    () => out.end(),
    (e: unknown) => out.destroy(e as Error),
  );
  return RESPONSE_ALREADY_SENT;
}

export function sendBytes(status: number, headers: Record<string, string>, body: Uint8Array | null): Response {
  return new Response(body, { status, headers: { ...API_VERSION_HEADER, ...headers } });
}

/** Parses a single-range `Range: bytes=a-b | a- | -n` against size. undefined: no usable Range (serve all). */
export function parseRange(value: string | undefined, size: number | undefined): { start: number; end: number } | 'invalid' | undefined {
  if (!value || size === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'invalid';
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'invalid';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'invalid';
  return { start, end };
}
