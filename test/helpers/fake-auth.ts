// Bearer-token auth and tags/list paging for the fake upstream: the 401 challenge, the /token endpoint, Link-paged tag lists.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ociError } from './fake-responses.ts';

/** Bearer token auth, as Docker Hub does it: 401 + challenge on /v2/, a token endpoint at /token. */
export interface AuthOptions {
  /** realm announced in the challenge; default `<this fake's url>/token` */
  realm?: string;
  service: string;
  /** when set, /token demands exactly these Basic credentials (else it answers 401) */
  username?: string;
  password?: string;
  /** expires_in of issued tokens, seconds; default 300 */
  expiresIn?: number;
  /**
   * How /token answers (after the credential check); default a complete JSON body with a fresh UUID token.
   * 'size': a valid answer whose token is `bytes` long (a hostile realm's huge token);
   * 'endless': 200 and `{"token":"aaa…` that never closes, written as fast as it is read, up to `maxBytes`;
   * 'trickle': 200 and `{"token":"` then one more byte every `tickMs`, never finishing.
   */
  tokenBody?: { kind: 'size'; bytes: number } | { kind: 'endless'; maxBytes: number } | { kind: 'trickle'; tickMs: number };
}

/** How tags/list answers: page size (with a Link header to the next page) and order. */
export interface TagListing {
  pageSize?: number;
  order?: 'sorted' | 'insertion';
}

/** The token auth of one fake: off until required; a token is good until auth is required again. */
export class FakeAuth {
  private options: AuthOptions | undefined;
  private readonly issued = new Set<string>();

  /** sentBytes: the fake's body bytes per request URL, which /token answers add to. */
  constructor(private readonly sentBytes: Map<string, number>) {}

  /** require bearer tokens on every /v2/ request from now on (undefined: back to anonymous) */
  require(options: AuthOptions | undefined): void {
    this.options = options;
    this.issued.clear();
  }

  /**
   * With auth on, answers GET /token and every /v2 request without a token this fake issued (401 + challenge)
   * and returns true; false: serve the request as usual. host: this fake's host:port, for the default realm.
   */
  intercept(req: IncomingMessage, res: ServerResponse, method: string, p: string, host: string): boolean {
    const auth = this.options;
    if (auth && p === '/token' && method === 'GET') {
      this.tokenEndpoint(req, res, auth);
      return true;
    }
    if (auth && p.startsWith('/v2')) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!bearer || !this.issued.has(bearer[1]!)) {
        const name = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//.exec(p)?.[1];
        const realm = auth.realm ?? `http://${host}/token`;
        const scope = name ? `,scope="repository:${name}:pull"` : '';
        res.setHeader('www-authenticate', `Bearer realm="${realm}",service="${auth.service}"${scope}`);
        ociError(res, 401, 'UNAUTHORIZED', 'authentication required');
        return true;
      }
    }
    return false;
  }

  private tokenEndpoint(req: IncomingMessage, res: ServerResponse, a: AuthOptions): void {
    if (a.username !== undefined) {
      const want = `Basic ${Buffer.from(`${a.username}:${a.password ?? ''}`).toString('base64')}`;
      if (req.headers.authorization !== want) return ociError(res, 401, 'UNAUTHORIZED', 'bad credentials');
    }
    const count = (n: number): void => void this.sentBytes.set(req.url ?? '/', (this.sentBytes.get(req.url ?? '/') ?? 0) + n);
    const body = a.tokenBody;
    if (body?.kind === 'endless' || body?.kind === 'trickle') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"token":"');
      count(10);
      if (body.kind === 'trickle') {
        const tick = setInterval(() => void (res.write('a') && count(1)), body.tickMs);
        res.on('close', () => clearInterval(tick));
        return;
      }
      const chunk = Buffer.alloc(64 << 10, 'a');
      let sent = 0;
      const more = (): void => {
        while (!res.destroyed && sent < body.maxBytes) {
          sent += chunk.length;
          count(chunk.length);
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      return more();
    }
    const token = body?.kind === 'size' ? randomUUID().padEnd(body.bytes, 't') : randomUUID();
    this.issued.add(token);
    const json = Buffer.from(JSON.stringify({ token, expires_in: a.expiresIn ?? 300 }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': json.length });
    res.end(json);
    count(json.length);
  }
}

/**
 * One page of repository name's tags/list (all: its tags in insertion order; this array is sorted in place unless the
 * listing keeps insertion order): after ?last=, at most ?n= (else pageSize) tags, with a Link header when more follow.
 */
export function tagPage(name: string, all: string[], url: URL, listing: TagListing): { body: Buffer; headers: Record<string, string> } {
  let tags = all;
  if (listing.order !== 'insertion') tags.sort();
  const last = url.searchParams.get('last');
  if (last !== null) tags = tags.slice(tags.indexOf(last) + 1);
  const n = Number(url.searchParams.get('n') ?? listing.pageSize ?? Infinity);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (tags.length > n) {
    tags = tags.slice(0, n);
    headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags[tags.length - 1]!)}>; rel="next"`;
  }
  return { body: Buffer.from(JSON.stringify({ name, tags })), headers };
}
