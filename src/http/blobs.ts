// GET/HEAD /v2/<name>/blobs/<digest>: HEAD from metadata only; GET streams (Range, multi-range too) from cache or a fill.
import type { Context } from 'hono';
import type { Proxy, Target } from '../cache/proxy.js';
import { requireDigest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { Env } from './middleware.js';
import { multipartBody, planRange } from './ranges.js';
import { clientSignal, parseRange, sendBytes, sendDirect, sendStream, zeroCopyUsable } from './respond.js';

/** nginx fronts stevedore (deploy/nginx/stevedore.conf): hits are answered with X-Accel-Redirect to `prefix` + CAS path. */
export interface BlobRouteOptions {
  accelPrefix?: string;
  /** Warm hits leave by sendfile(2) (zero-copy) where the socket allows it. */
  sendfile?: boolean;
}

export async function blobRoute(c: Context<Env>, proxy: Proxy, target: Target, reference: string, opts: BlobRouteOptions = {}): Promise<Response> {
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
  // The signal aborts when the client goes away: a fill still queued for it then never starts.
  const blob = await proxy.blobs.get(target, digest, { signal: clientSignal(c), pathOnly: opts.accelPrefix !== undefined });
  info.outcome = blob.outcome;
  base['x-stevedore-cache'] = blob.outcome;
  if (blob.redirect) return sendBytes(302, { location: blob.redirect, 'docker-content-digest': digest, 'content-length': '0' }, null);
  if (opts.accelPrefix && blob.casPath && blob.size !== undefined) {
    // nginx sends the verified file (and answers Range, multi-range too, itself); stevedore has decided, and logs and counts it.
    blob.discard?.();
    const r = parseRange(c.req.header('range'), blob.size);
    info.bytes = r && r !== 'invalid' ? r.end - r.start + 1 : r === 'invalid' ? 0 : blob.size;
    // Content-Length 0, not chunked: nginx keeps an upstream connection only when it has read the whole (empty) body.
    return sendBytes(200, { ...base, 'content-length': '0', 'x-accel-redirect': `${opts.accelPrefix}${blob.casPath}` }, null);
  }
  // If-Range (RFC 9110 §13.1.5): the Range counts only when the validator is this blob's (strong) ETag.
  const ifRange = c.req.header('if-range');
  const header = blob.wholeOnly || (ifRange !== undefined && ifRange.trim() !== base.etag) ? undefined : c.req.header('range');
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
    const mp = multipartBody(
      (s, e) => blob.open(s, e),
      plan.parts,
      blob.size!,
      base['content-type']!,
      () => blob.discard?.(),
    );
    return sendStream(c, 206, { ...base, ...mp.headers }, mp.body, onEnd);
  }
  const status = range ? 206 : 200;
  const headers = range
    ? { ...base, 'content-length': String(range.end - range.start + 1), 'content-range': `bytes ${range.start}-${range.end}/${blob.size}` }
    : blob.size !== undefined
      ? { ...base, 'content-length': String(blob.size) }
      : base;
  const zeroCopy = zeroCopyUsable(c, opts.sendfile);
  if (blob.send && blob.size !== undefined && (zeroCopy || !blob.sendNeedsZeroCopy)) {
    const [start, end] = range ? [range.start, range.end] : [0, blob.size - 1];
    const sent = sendDirect(c, status, headers, (sink) => blob.send!(sink, start, end), onEnd, zeroCopy);
    if (sent) return sent;
  }
  return sendStream(c, status, headers, range ? blob.open(range.start, range.end) : blob.open(), onEnd);
}
