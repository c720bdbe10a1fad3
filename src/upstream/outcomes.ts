// Maps what an upstream said or failed to say into typed outcomes: UpstreamNotFound for a 404, else the OciError a client should see.
import { OciError, type OciCode } from '../oci/errors.js';
import { header, UpstreamError, type Headers } from './client.js';

/** The upstream answered 404: it does not hold this for this repository (an answer, not a failure). */
export class UpstreamNotFound extends OciError {
  constructor(code: OciCode, detail: Record<string, unknown>) {
    super(code, detail);
    this.name = 'UpstreamNotFound';
  }
}

/** For a non-2xx upstream answer (body already consumed). `notFound` is the code for a real upstream 404. */
export function fromUpstreamStatus(res: { status: number; headers: Headers }, notFound: OciCode, what: Record<string, unknown>): OciError {
  const upstreamStatus = res.status;
  if (upstreamStatus === 404) return new UpstreamNotFound(notFound, { ...what, upstreamStatus });
  if (upstreamStatus === 429) {
    const retryAfter = header(res.headers, 'retry-after');
    return new OciError('TOOMANYREQUESTS', { ...what, upstreamStatus }, undefined, retryAfter ? { 'retry-after': retryAfter } : {});
  }
  if (upstreamStatus === 401 || upstreamStatus === 403) {
    return new OciError('DENIED', { ...what, upstreamStatus, reason: 'upstream refused access (credentials missing or wrong?)' });
  }
  return new OciError(notFound, { ...what, upstreamStatus, reason: 'upstream failed and nothing is cached' });
}

/** For an upstream that could not be reached: unknown here, said plainly. */
export function fromUnreachable(e: unknown, notFound: OciCode, what: Record<string, unknown>): OciError {
  if (e instanceof OciError) return e;
  const reason = e instanceof UpstreamError ? e.message : `upstream error: ${(e as Error)?.message ?? e}`;
  return new OciError(notFound, { ...what, reason: `not cached and ${reason}` });
}

/** Is this an upstream failure (as opposed to an answer) that stale content may cover? */
export function isUpstreamFailure(e: unknown): boolean {
  return e instanceof UpstreamError;
}
