// Who may see the status page: the one check, so the client auth of the security work can be added here alone.
import { createHash, timingSafeEqual } from 'node:crypto';

const hash = (s: string): Buffer => createHash('sha256').update(s).digest();

/** The password of `Basic base64(user:password)`, or the token of `Bearer token`. */
function secretOf(authorization: string): string | undefined {
  const [scheme, value = ''] = authorization.split(' ', 2);
  if (scheme?.toLowerCase() === 'bearer') return value;
  if (scheme?.toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

/**
 * With an admin token: that token as a Bearer token, or as the password of Basic auth (any user name) so that a
 * browser can log in; compared in constant time (hashes of equal length). Without one: open, unless client
 * authentication (auth:) is on, where the page (every repository's name, across clients) stays closed.
 */
export function canViewStatus(authorization: string | undefined, adminToken: string | undefined, clientAuth = false): boolean {
  if (adminToken === undefined) return !clientAuth;
  const secret = authorization ? secretOf(authorization) : undefined;
  return timingSafeEqual(hash(secret ?? ''), hash(adminToken)) && secret !== undefined;
}
