// Sends a response, streaming Node bodies straight to the socket when running under @hono/node-server.
import { Readable } from 'node:stream';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';
import type { ByteSink } from '../cache/blobs/handle.js';
import { nodeOf, type Env } from './middleware.js';

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
    out.once('close', () => {
      if (!body.readableEnded) body.destroy();
    });
    return RESPONSE_ALREADY_SENT;
  }
  return new Response(Readable.toWeb(body) as ReadableStream, { status, headers: { ...API_VERSION_HEADER, ...headers } });
}

/**
 * The warm path under node-server: headers, then `send` writes large chunks straight into the response (one
 * socket write each, buffers reused once the kernel took them); any failure destroys the socket, so a client
 * sees a truncated response, never a clean end. undefined when not under node-server (the caller streams).
 */
export function sendDirect(
  c: Context<Env>,
  status: number,
  headers: Record<string, string>,
  send: (sink: ByteSink) => Promise<void>,
  onChunk: (bytes: number) => void,
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
  const sink: ByteSink = {
    write(chunk, done) {
      onChunk(chunk.length);
      const once = (err?: Error | null): void => {
        if (pending.delete(once)) done(err);
      };
      pending.add(once);
      out.write(chunk, once);
    },
    get closed() {
      return out.destroyed || out.writableEnded;
    },
  };
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
