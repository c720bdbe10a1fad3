// The one place that turns anything thrown into an OCI error response ({"errors":[{code,message,detail}]}).
import type { Logger } from 'pino';
import { OciError } from '../oci/errors.js';

/**
 * System errors that mean "this server cannot do it right now" (out of file descriptors, memory, an I/O error
 * reading the disk): 503 with the reason and a Retry-After, not a 500 that reads as a bug.
 */
const TRANSIENT = new Set(['EMFILE', 'ENFILE', 'EIO', 'ENOMEM', 'EAGAIN', 'EBUSY', 'ENOSPC', 'EROFS', 'ENXIO']);

export function toOciError(err: unknown, log?: Logger): OciError {
  if (err instanceof OciError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code && TRANSIENT.has(code)) {
    log?.warn({ err: (err as Error).message, code }, 'request failed on a system resource');
    return new OciError('UNAVAILABLE', { reason: `server cannot read or write its store right now: ${(err as Error).message}`, code }, undefined, {
      'retry-after': '1',
    });
  }
  log?.error({ err }, 'unexpected error');
  return new OciError('UNKNOWN', { reason: 'internal error; see the server log' });
}

/** On every /v2/ answer: registry answers are data, never a page a browser renders or runs on this origin. */
export const API_GUARD: Readonly<Record<string, string>> = { 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; sandbox" };

/**
 * What the HTTP adapter could not make a request of (a backslash in the path, a bad Host, a target that is no
 * http URL): 400 with the envelope, never routed. Anything else thrown before routing: the usual error answer.
 */
export function adapterErrorResponse(err: unknown): Response {
  if ((err as Error)?.name !== 'RequestError') return errorResponse(err, 'GET');
  return errorResponse(
    new OciError('UNSUPPORTED', { reason: (err as Error).message }, 'malformed HTTP request', { connection: 'close', ...API_GUARD }, 400),
    'GET',
  );
}

export function errorResponse(err: unknown, method: string, log?: Logger): Response {
  const e = toOciError(err, log);
  const body = JSON.stringify(e.toBody());
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'docker-distribution-api-version': 'registry/2.0',
    ...e.headers,
  };
  if (e.code === 'RANGE_INVALID' && typeof (e.detail as { size?: number })?.size === 'number') {
    headers['content-range'] = `bytes */${(e.detail as { size: number }).size}`;
  }
  headers['content-length'] = String(Buffer.byteLength(body));
  return new Response(method === 'HEAD' ? null : body, { status: e.status, headers });
}
