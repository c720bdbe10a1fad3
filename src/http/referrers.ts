// GET/HEAD /v2/<name>/referrers/<digest>[?artifactType=]: the referrers list (an image index), as the cache resolved it.
import type { Context } from 'hono';
import type { Proxy, Target } from '../cache/proxy.js';
import { requireDigest } from '../oci/digest.js';
import { MT } from '../oci/media-types.js';
import type { Env } from './middleware.js';
import { sendBytes } from './respond.js';

export async function referrersRoute(c: Context<Env>, proxy: Proxy, target: Target, reference: string): Promise<Response> {
  const digest = requireDigest(reference);
  const r = await proxy.referrers.get(target, digest, c.req.query('artifactType') || undefined);
  Object.assign(c.get('info'), { digest, outcome: r.outcome, bytes: c.req.method === 'HEAD' ? 0 : r.body.length });
  const headers: Record<string, string> = {
    'content-type': MT.ociIndex,
    'content-length': String(r.body.length),
    'x-stevedore-cache': r.outcome,
    // Where the list came from: the upstream's referrers API, its referrers tag (no API), or neither.
    'x-stevedore-referrers': r.source,
  };
  if (r.filters) headers['oci-filters-applied'] = r.filters;
  if (r.outcome === 'stale') headers.warning = '110 stevedore "Response is Stale: upstream unavailable"';
  return sendBytes(200, headers, c.req.method === 'HEAD' ? null : r.body);
}
