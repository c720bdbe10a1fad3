// The one place that turns anything thrown into an OCI error response ({"errors":[{code,message,detail}]}).
import type { Logger } from 'pino';
import { OciError } from '../oci/errors.js';

export function toOciError(err: unknown, log?: Logger): OciError {
  if (err instanceof OciError) return err;
  log?.error({ err }, 'unexpected error');
  return new OciError('UNKNOWN', { reason: 'internal error; see the server log' });
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
