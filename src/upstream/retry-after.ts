// An upstream's Retry-After (delta-seconds or HTTP-date) read as whole seconds within sane bounds.

/**
 * The longest wait we pass on. The value is the upstream's word, used for our own retry and told to clients:
 * 99999999999 would have them wait 3,000 years, and a registry's rate limit that lifts later than an hour is
 * asked again after an hour (and answers a new Retry-After).
 */
export const RETRY_AFTER_MAX_S = 3600;
/** The shortest: a zero or negative value would mean an immediate retry, with no backoff at all. */
export const RETRY_AFTER_MIN_S = 1;

/**
 * Retry-After as whole seconds in RETRY_AFTER_MIN_S..RETRY_AFTER_MAX_S (RFC 9110 10.2.3: delta-seconds, or an
 * HTTP-date counted from `now`; a fraction or a negative number is read as a number too), or undefined when it
 * is absent or neither.
 */
export function retryAfterSeconds(value: string | undefined, now: number = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  let seconds: number;
  if (/^-?\d+(\.\d+)?(e\d+)?$/i.test(text)) seconds = Number(text);
  else {
    const at = Date.parse(text);
    if (!Number.isFinite(at) || !/[a-z]/i.test(text)) return undefined;
    seconds = (at - now) / 1000;
  }
  return Math.min(RETRY_AFTER_MAX_S, Math.max(RETRY_AFTER_MIN_S, Math.ceil(seconds)));
}
