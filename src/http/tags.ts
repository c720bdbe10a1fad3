// GET /v2/<name>/tags/list: sorted, paginated by n/last with a Link header (done here; many upstreams ignore them).
import type { Context } from 'hono';
import type { Proxy, Target } from '../cache/proxy.js';
import { OciError } from '../oci/errors.js';
import type { Env } from './middleware.js';
import { clientSignal, sendBytes } from './respond.js';

export async function tagsRoute(c: Context<Env>, proxy: Proxy, target: Target, name: string): Promise<Response> {
  const nParam = c.req.query('n');
  if (nParam !== undefined && !/^\d{1,9}$/.test(nParam)) throw new OciError('PAGINATION_NUMBER_INVALID', { n: nParam });
  const n = nParam === undefined ? undefined : Number(nParam);
  // The client's signal: a fetch of a long list stops once every client waiting for it has gone.
  const page = await proxy.tags.list(target, n, c.req.query('last'), clientSignal(c));
  const body = Buffer.from(JSON.stringify({ name, tags: page.tags }));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length) };
  if (page.next !== undefined && n !== undefined) {
    const q = new URLSearchParams({ n: String(n), last: page.next });
    const ns = c.req.query('ns');
    if (ns) q.set('ns', ns);
    headers.link = `</v2/${name}/tags/list?${q}>; rel="next"`;
  }
  c.get('info').outcome = 'list';
  return sendBytes(200, headers, c.req.method === 'HEAD' ? null : body);
}
