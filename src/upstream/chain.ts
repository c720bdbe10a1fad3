// Mirror chains: one logical request tried on an upstream's endpoints in order (mirrors asked with ?ns=), first answer wins.
import type { UpstreamClient, UpstreamResponse } from './client.js';
import type { Endpoint, Upstream } from './types.js';

/** What the cache layer needs to reach an upstream: one logical request, whatever the endpoints behind it. */
export interface UpstreamSender {
  send(upstream: Upstream, repo: string, path: string, method: 'GET' | 'HEAD', headers?: Record<string, string>): Promise<UpstreamResponse>;
}

/** The path to ask a mirror endpoint for: the original registry's name in ?ns= (containerd's convention). */
export function mirrorPath(path: string, ns: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}ns=${encodeURIComponent(ns)}`;
}

/**
 * Sends to each endpoint in turn (client.send: its own circuit breaker, retries, auth and credentials, keyed by
 * the endpoint's name). An endpoint that cannot be reached (or whose circuit is open), or that answers with an
 * error status (>= 400: a mirror that does not have it, or whose own upstream is down), hands over to the next one;
 * the last endpoint's answer or failure is the result. An upstream without `endpoints` is its own one endpoint.
 */
export class MirrorChain implements UpstreamSender {
  constructor(private readonly client: Pick<UpstreamClient, 'send'>) {}

  async send(upstream: Upstream, repo: string, path: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}): Promise<UpstreamResponse> {
    const endpoints: readonly Endpoint[] = upstream.endpoints ?? [{ ...upstream, mirror: false, endpoints: undefined }];
    for (let i = 0; ; i++) {
      const e = endpoints[i]!;
      const last = i === endpoints.length - 1;
      const p = e.mirror && repo ? mirrorPath(path, upstream.name) : path;
      if (last) return this.client.send(e, repo, p, method, headers);
      try {
        const res = await this.client.send(e, repo, p, method, headers);
        if (res.status < 400) return res;
        await res.body.dump().catch(() => undefined);
      } catch {
        // Unreachable, circuit open or auth refused: the next endpoint decides.
      }
    }
  }
}
