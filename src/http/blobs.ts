// GET/HEAD /v2/<name>/blobs/<digest>: HEAD from metadata only; GET streams (Range, multi-range too) from cache or a fill.
import type { Context } from 'hono';
import type { Proxy, Target } from '../cache/proxy.js';
import { requireDigest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { Env } from './middleware.js';
import { multipartBody, planRange } from './ranges.js';
import { parseRange, sendBytes, sendStream } from './respond.js';

export async function blobRoute(c: Context<Env>, proxy: Proxy, target: Target, reference: string): Promise<Response> {
  const digest = requireDigest(reference);
  const info = c.get('info');
  info.digest = digest;
  const base: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'docker-content-digest': digest,
    etag: `"${digest}"`,
    'accept-ranges': 'bytes',
  };
  if (c.req.method === 'HEAD') {
    const st = await proxy.blobs.stat(target, digest);
    info.outcome = st.outcome;
    base['x-stevedore-cache'] = st.outcome;
    return sendBytes(200, st.size !== undefined ? { ...base, 'content-length': String(st.size) } : base, null);
  }
  const blob = await proxy.blobs.get(target, digest);
  info.outcome = blob.outcome;
  base['x-stevedore-cache'] = blob.outcome;
  if (blob.redirect) return sendBytes(302, { location: blob.redirect, 'docker-content-digest': digest, 'content-length': '0' }, null);
  const header = blob.wholeOnly ? undefined : c.req.header('range');
  // Anything but one well-formed range goes through ranges.ts (multipart, ignored, or 416); one range stays on the fast path.
  const plan = header === undefined ? undefined : planRange(header, blob.size);
  const range = plan?.kind === 'single' ? parseRange(plan.header, blob.size) : undefined;
  if (range === 'invalid' || plan?.kind === 'unsatisfiable') {
    blob.discard?.();
    throw new OciError('RANGE_INVALID', { range: header, size: blob.size });
  }
  info.bytes = 0;
  const onEnd = (n: number): void => {
    info.bytes! += n;
  };
  if (plan?.kind === 'multi') {
    const mp = multipartBody((s, e) => blob.open(s, e), plan.parts, blob.size!, base['content-type']!);
    return sendStream(c, 206, { ...base, ...mp.headers }, mp.body, onEnd);
  }
  if (range) {
    const headers = { ...base, 'content-length': String(range.end - range.start + 1), 'content-range': `bytes ${range.start}-${range.end}/${blob.size}` };
    return sendStream(c, 206, headers, blob.open(range.start, range.end), onEnd);
  }
  const headers = blob.size !== undefined ? { ...base, 'content-length': String(blob.size) } : base;
  return sendStream(c, 200, headers, blob.open(), onEnd);
}
