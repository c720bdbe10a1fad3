// GET/HEAD /v2/<name>/manifests/<reference>: upstream's exact bytes, Content-Type and Docker-Content-Digest.
import type { Context } from 'hono';
import type { Proxy, Target } from '../cache/proxy.js';
import { OciError } from '../oci/errors.js';
import { parseReference } from '../oci/reference.js';
import type { Env } from './middleware.js';
import { sendBytes } from './respond.js';

export async function manifestRoute(c: Context<Env>, proxy: Proxy, target: Target, reference: string): Promise<Response> {
  const ref = parseReference(reference);
  if (!ref) {
    // A malformed digest is a bad request; anything else that is not a tag names no manifest (the spec and
    // distribution answer 404 MANIFEST_UNKNOWN), and the upstream is never asked.
    throw reference.includes(':')
      ? new OciError('DIGEST_INVALID', { reference })
      : new OciError('MANIFEST_UNKNOWN', { reason: 'neither a valid tag nor a digest', reference });
  }
  const m = await proxy.manifests.get(target, ref, c.req.header('accept'));
  Object.assign(c.get('info'), { reference, digest: m.digest, outcome: m.outcome, bytes: c.req.method === 'HEAD' ? 0 : m.body.length });
  const headers: Record<string, string> = {
    'content-type': m.mediaType,
    'docker-content-digest': m.digest,
    'content-length': String(m.body.length),
    etag: `"${m.digest}"`,
    'x-stevedore-cache': m.outcome,
  };
  if (m.outcome === 'stale') headers.warning = '110 stevedore "Response is Stale: upstream unavailable"';
  return sendBytes(200, headers, c.req.method === 'HEAD' ? null : m.body);
}
