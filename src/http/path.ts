// Splits a raw /v2/ request path into name, kind and reference; refuses traversal and encoded separators.
import { OciError } from '../oci/errors.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'manifests' | 'blobs'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'other'; name?: string };

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
