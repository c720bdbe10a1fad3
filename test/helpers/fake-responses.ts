// How the fake upstream writes responses: OCI error bodies, injected status faults, and (ranged) bodies with byte-level faults.
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Fault =
  | { kind: 'wrong-bytes' }
  | { kind: 'cut'; afterBytes: number; times?: number }
  | { kind: 'status'; status: number; retryAfter?: number | string; times?: number; body?: string }
  | { kind: 'slow-headers'; ms: number }
  | { kind: 'slow-body'; bytesPerTick: number; tickMs: number }
  /** answer GET and HEAD with a redirect to `location` (e.g. another server: a CDN) */
  | { kind: 'redirect'; location: string; status?: number; times?: number }
  /** withhold the response (GET or HEAD) until releaseHeld() or stop(), at most 30 s; default times 1 */
  | { kind: 'hold'; times?: number }
  /** answer a blob GET with 206 and a Content-Range one byte later than asked (also without Range: a 206 from byte 1) */
  | { kind: 'bad-content-range' };

export type Blob = { bytes: Buffer } | { file: string; size: number };

const sizeOf = (b: Blob): number => ('bytes' in b ? b.bytes.length : b.size);

export function ociError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message, detail: null }] }));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

export function statusFault(res: ServerResponse, f: Extract<Fault, { kind: 'status' }>): void {
  const body = Buffer.from(f.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${f.status}` }] }));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length) };
  if (f.retryAfter !== undefined) headers['retry-after'] = String(f.retryAfter);
  res.writeHead(f.status, headers);
  res.end(body);
}

/** Yield the bytes [start, end] of a blob in chunks. */
async function* chunksOf(b: Blob, start: number, end: number): AsyncGenerator<Buffer> {
  if (end < start) return;
  if ('bytes' in b) {
    for (let o = start; o <= end; o += 65_536) yield b.bytes.subarray(o, Math.min(o + 65_536, end + 1));
    return;
  }
  for await (const c of createReadStream(b.file, { start, end })) yield c as Buffer;
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

/** What sending needs from its fake: a sleep that stop() cuts short, and the body bytes sent so far per request URL. */
export interface SendContext {
  wait(ms: number): Promise<void>;
  sentBytes: Map<string, number>;
}

/** Answers GET or HEAD with body (a Range of it for blobs), applying a body or header fault on the way. */
export async function send(
  ctx: SendContext,
  req: IncomingMessage,
  res: ServerResponse,
  body: Blob,
  headers: Record<string, string>,
  fault: Fault | undefined,
): Promise<void> {
  const { wait, sentBytes } = ctx;
  const total = sizeOf(body);
  let start = 0;
  let end = total - 1;
  let status = 200;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range && headers['content-type'] === 'application/octet-stream') {
    start = Number(range[1]);
    end = range[2] ? Math.min(Number(range[2]), total - 1) : total - 1;
    if (start >= total || end < start) {
      res.writeHead(416, { 'content-range': `bytes */${total}`, 'content-length': 0 });
      res.end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${total}`;
  }
  if (fault?.kind === 'bad-content-range' && req.method === 'GET') {
    status = 206;
    start = Math.min(start + 1, end);
    headers['content-range'] = `bytes ${start}-${end}/${total}`;
  }
  if (fault?.kind === 'slow-headers') await wait(fault.ms);
  if (res.destroyed) return;
  res.writeHead(status, { ...headers, 'content-length': String(end - start + 1), 'accept-ranges': 'bytes' });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const key = req.url ?? '/';
  const count = (n: number): void => void sentBytes.set(key, (sentBytes.get(key) ?? 0) + n);
  let sent = 0;
  for await (let chunk of chunksOf(body, start, end)) {
    if (res.destroyed) return;
    if (fault?.kind === 'wrong-bytes') chunk = Buffer.from(chunk.map((b) => b ^ 0xff));
    if (fault?.kind === 'cut' && sent + chunk.length >= fault.afterBytes) {
      await write(res, chunk.subarray(0, fault.afterBytes - sent));
      count(fault.afterBytes - sent);
      await wait(20); // let the partial bytes reach the client before the reset
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'slow-body') {
      for (let o = 0; o < chunk.length && !res.destroyed; o += fault.bytesPerTick) {
        const part = chunk.subarray(o, o + fault.bytesPerTick);
        await write(res, part);
        count(part.length);
        await wait(fault.tickMs);
      }
    } else {
      await write(res, chunk);
      count(chunk.length);
    }
    sent += chunk.length;
  }
  res.end();
}
