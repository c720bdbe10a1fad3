// Splits a raw /v2/ request path into name, kind and reference; refuses traversal and encoded separators (and
// dot segments in any path: URL normalisation must never route a request somewhere its raw path does not name).
import { OciError } from '../oci/errors.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'manifests' | 'blobs'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'other'; name?: string };

/** A "." or ".." segment (also percent-encoded) anywhere in a raw path. */
export function hasDotSegment(rawPath: string): boolean {
  return rawPath.split('/').some((seg) => /^(?:\.|%2e){1,2}$/i.test(seg));
}

/**
 * The path of a raw request target: the origin form as it is; the absolute form (`http://host/v2/...`, RFC 9112
 * §3.2.2) without scheme and authority; the query dropped.
 */
export function targetPath(target: string): string {
  const path = /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '') || '/' : target;
  return path.split('?')[0]!;
}

/** Parses the raw (undecoded) path; throws NAME_INVALID on "..", ".", empty or encoded-slash segments. */
export function parseV2Path(rawPath: string): Route {
  const segments = rawPath.split('/').slice(1);
  if (segments[0] !== 'v2') return { kind: 'other' };
  const rest = segments.slice(1);
  if (rest.length === 0 || (rest.length === 1 && rest[0] === '')) return { kind: 'base' };
  // The spec's upload endpoint ends with a slash: /v2/<name>/blobs/uploads/
  if (rest.length > 2 && rest[rest.length - 1] === '' && rest[rest.length - 2] === 'uploads') rest.pop();
  const decoded = rest.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw new OciError('NAME_INVALID', { reason: 'bad percent-encoding in path' });
    }
    if (d === '' || d === '.' || d === '..' || d.includes('/') || d.includes('\\') || d.includes('\0')) {
      throw new OciError('NAME_INVALID', { reason: 'path traversal or empty path segment', path: rawPath });
    }
    return d;
  });
  const n = decoded.length;
  if (n >= 3 && decoded[n - 2] === 'manifests') return { kind: 'manifests', name: decoded.slice(0, n - 2).join('/'), reference: decoded[n - 1]! };
  const up = decoded.lastIndexOf('uploads');
  if (up >= 2 && decoded[up - 1] === 'blobs') return { kind: 'uploads', name: decoded.slice(0, up - 1).join('/') };
  if (n >= 3 && decoded[n - 2] === 'blobs') return { kind: 'blobs', name: decoded.slice(0, n - 2).join('/'), reference: decoded[n - 1]! };
  if (n >= 3 && decoded[n - 2] === 'referrers') return { kind: 'referrers', name: decoded.slice(0, n - 2).join('/'), digest: decoded[n - 1]! };
  if (n >= 3 && decoded[n - 2] === 'tags' && decoded[n - 1] === 'list') return { kind: 'tags', name: decoded.slice(0, n - 2).join('/') };
  return { kind: 'other', name: decoded.join('/') };
}
