// Maps what an upstream said or failed to say into typed outcomes: UpstreamNotFound for a 404, else the OciError a client should see.
import { OciError, type OciCode } from '../oci/errors.js';
import { header, readCapped, UpstreamError, type Headers, type UpstreamResponse } from './client.js';
import { retryAfterSeconds } from './retry-after.js';

const ERROR_BODY_MAX = 16 << 10;

/** The upstream answered 404: it does not hold this for this repository (an answer, not a failure). */
export class UpstreamNotFound extends OciError {
  constructor(code: OciCode, detail: Record<string, unknown>) {
    super(code, detail);
    this.name = 'UpstreamNotFound';
  }
}

/** The upstream refused the request with a 4xx that is neither "not found" nor "not allowed": a bad gateway answer. */
export class UpstreamRefused extends OciError {
  override readonly status = 502;
  constructor(detail: Record<string, unknown>) {
    super('UNKNOWN', detail, 'the upstream registry refused the request');
    this.name = 'UpstreamRefused';
  }
}

/**
 * Consumes a non-2xx answer's body: the upstream's OCI `errors` (or the start of its text) for a 4xx that is
 * passed on in a detail, nothing otherwise. Bounded; never throws.
 */
export async function upstreamErrors(res: UpstreamResponse): Promise<unknown> {
  const passedOn = res.status >= 400 && res.status < 500 && ![401, 403, 404, 429].includes(res.status);
  if (!passedOn) {
    await res.body.dump().catch(() => undefined);
    return undefined;
  }
  try {
    const text = (await readCapped(res.body, ERROR_BODY_MAX)).toString('utf8');
    try {
      const errors = (JSON.parse(text) as { errors?: unknown }).errors;
      if (Array.isArray(errors)) return errors.slice(0, 10);
    } catch {
      // not JSON: the text itself, shortened
    }
    return text.slice(0, 512);
  } catch {
    return undefined;
  }
}

/**
 * For a non-2xx upstream answer (body consumed; `errors` from upstreamErrors). `notFound` is the code for a real
 * upstream 404; any other 4xx than 401/403/404/429 is a 502 carrying the upstream's status and errors. A 429's
 * Retry-After is passed on read as 1..3600 s (retry-after.ts), never raw.
 */
export function fromUpstreamStatus(res: { status: number; headers: Headers }, notFound: OciCode, what: Record<string, unknown>, errors?: unknown): OciError {
  const upstreamStatus = res.status;
  if (upstreamStatus === 404) return new UpstreamNotFound(notFound, { ...what, upstreamStatus });
  if (upstreamStatus === 429) {
    const retryAfter = retryAfterSeconds(header(res.headers, 'retry-after'));
    return new OciError('TOOMANYREQUESTS', { ...what, upstreamStatus }, undefined, retryAfter !== undefined ? { 'retry-after': String(retryAfter) } : {});
  }
  if (upstreamStatus === 401 || upstreamStatus === 403) {
    return new OciError('DENIED', { ...what, upstreamStatus, reason: 'upstream refused access (credentials missing or wrong?)' });
  }
  if (upstreamStatus >= 400 && upstreamStatus < 500) {
    return new UpstreamRefused({
      ...what,
      upstreamStatus,
      ...(errors !== undefined ? { upstreamErrors: errors } : {}),
      reason: `upstream answered ${upstreamStatus}`,
    });
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

/**
 * The upstream answered something we cannot use (an invalid manifest, a Content-Range that is not what was asked
 * for): 502 UNAVAILABLE with the reason, never a client error or a 500. 503/504 for an upstream that is
 * overloaded or too slow.
 */
export function upstreamFault(status: 502 | 503 | 504, what: Record<string, unknown>, reason: string): OciError {
  const message = status === 504 ? 'upstream timed out' : status === 503 ? 'upstream unavailable' : 'upstream sent an invalid response';
  return new OciError('UNAVAILABLE', { ...what, reason }, message, {}, status);
}
