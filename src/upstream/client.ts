// HTTP to upstream registries (undici): auth challenges, redirects without credentials, bounded retries.
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import type { Headers, Upstream, UpstreamResponse } from './types.js';
import { guardHop } from './hop-guard.js';
import { retryAfterSeconds } from './retry-after.js';
import { RefusedError } from './safe-fetch.js';
import type { CircuitBreaker } from './breaker.js';
import { AuthRefusedError, TokenAuth } from './token-auth.js';

type Body = Dispatcher.ResponseData['body'];
export type { Headers, UpstreamResponse } from './types.js';

/** The upstream could not be reached, or answered with a status we treat as an upstream failure. */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    message: string,
    /**
     * 'auth': our own refusal of the upstream's auth setup; 'refused': of where it redirected us (address guard).
     * Neither says anything about the upstream's health, and retrying cannot help.
     */
    readonly kind: 'network' | 'auth' | 'refused' = 'network',
  ) {
    super(message);
  }
}

export interface ClientOptions {
  timeouts: { connect: number; headers: number; bodyIdle: number };
  retries: number;
  /** Longest Retry-After (read as 1..3600 s) we wait out ourselves; longer ones go back to the client as 429. */
  maxRetryAfterMs?: number;
  baseBackoffMs?: number;
  /** Never contact any upstream: every request fails at once with a clear reason. */
  offline?: boolean;
  breaker?: CircuitBreaker;
  /** Called per attempt: status (or 'error'), seconds until headers. */
  observe?: (upstream: string, method: string, status: number | 'error', seconds: number) => void;
  onError?: (upstream: string, reason: 'network' | 'status' | 'circuit-open' | 'offline') => void;
  /** Connections per origin: blob downloads have their own pool, so manifests, tags and tokens never queue behind them. */
  connections?: { blobs?: number; other?: number };
}

export function header(h: Headers, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * The longest token answer we read. Real ones are a few KiB (Docker Hub's JWT with its JSON is about 1-4 KiB,
 * GHCR's and Quay's are shorter); 64 KiB leaves room for any registry's, and stops a hostile realm's endless or
 * megabyte answer before it costs memory (the token is also sent upstream with every request, and cached).
 */
export const TOKEN_BODY_MAX = 64 << 10;

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

export class UpstreamClient {
  readonly auth: TokenAuth;
  /** Manifests, tags, HEADs and tokens: small, latency-sensitive requests. */
  private readonly agent: Agent;
  /** Blob GETs: long downloads that may use every connection of their pool. */
  private readonly blobAgent: Agent;
  private readonly maxRetryAfterMs: number;
  private readonly baseBackoffMs: number;

  constructor(private readonly opts: ClientOptions) {
    const agent = (connections: number) =>
      new Agent({
        connect: { timeout: opts.timeouts.connect },
        headersTimeout: opts.timeouts.headers,
        bodyTimeout: opts.timeouts.bodyIdle,
        keepAliveTimeout: 30_000,
        connections,
      });
    this.agent = agent(opts.connections?.other ?? 32);
    this.blobAgent = agent(opts.connections?.blobs ?? 64);
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 10_000;
    this.baseBackoffMs = opts.baseBackoffMs ?? 200;
    this.auth = new TokenAuth((url, headers) => this.fetchToken(url, headers));
  }

  /**
   * One token request to a realm (already checked by TokenAuth). Its body is read up to TOKEN_BODY_MAX, and the
   * whole request (connection, headers, body) must fit in the connect + headers timeouts: bodyIdle alone let a
   * realm that trickles a byte every few seconds hold the request forever, and body.json() buffered an endless
   * body until the process died. Too long an answer is refused (AuthRefusedError: asking again cannot help).
   */
  private async fetchToken(url: string, headers: Record<string, string>): Promise<{ status: number; json: unknown }> {
    const deadline = this.opts.timeouts.connect + this.opts.timeouts.headers;
    const signal = AbortSignal.timeout(deadline);
    try {
      const res = await request(url, { method: 'GET', headers, dispatcher: this.agent, signal });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return { status: res.statusCode, json: undefined };
      }
      const body = await readCapped(res.body, TOKEN_BODY_MAX).catch((e: unknown) => {
        if (e instanceof RangeError) throw new AuthRefusedError(`token endpoint answered more than ${TOKEN_BODY_MAX} bytes; refused`);
        throw e;
      });
      return { status: 200, json: JSON.parse(body.toString('utf8')) };
    } catch (e) {
      if (signal.aborted) throw new Error(`token endpoint did not answer within ${deadline} ms`);
      throw e;
    }
  }

  /**
   * One logical request to `${upstream}/v2/${repo}${path}`: answers auth challenges, follows redirects
   * (dropping Authorization when the origin changes), retries network errors, 5xx and short 429s.
   * Returns any final HTTP status; throws UpstreamError when the upstream cannot be reached.
   */
  async send(upstream: Upstream, repo: string, path: string, method: 'GET' | 'HEAD', headers: Record<string, string> = {}): Promise<UpstreamResponse> {
    const { breaker, onError } = this.opts;
    if (this.opts.offline) {
      onError?.(upstream.name, 'offline');
      throw new UpstreamError(`stevedore is offline (--offline) and never contacts upstream ${upstream.name}`);
    }
    const wait = breaker?.check(upstream.name);
    if (wait !== undefined) {
      onError?.(upstream.name, 'circuit-open');
      throw new UpstreamError(`upstream ${upstream.name} is failing (circuit open); next attempt in ${Math.ceil(wait / 1000)} s`);
    }
    try {
      const res = await this.attempts(upstream, repo, path, method, headers);
      if (res.status >= 500) {
        breaker?.failure(upstream.name);
        onError?.(upstream.name, 'status');
      } else {
        breaker?.success(upstream.name);
      }
      return res;
    } catch (e) {
      if (!(e instanceof UpstreamError && e.kind !== 'network')) breaker?.failure(upstream.name);
      onError?.(upstream.name, 'network');
      throw e;
    }
  }

  private async attempts(upstream: Upstream, repo: string, path: string, method: 'GET' | 'HEAD', headers: Record<string, string>): Promise<UpstreamResponse> {
    const url = repo ? `${upstream.url}/v2/${repo}${path}` : `${upstream.url}/v2/`;
    const scope = `repository:${repo}:pull`;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < this.opts.retries;
      const started = performance.now();
      const observe = (status: number | 'error') => this.opts.observe?.(upstream.name, method, status, (performance.now() - started) / 1000);
      try {
        let res = await this.follow(upstream, url, path, method, headers, this.auth.cached(upstream, scope));
        const challenge = header(res.headers, 'www-authenticate');
        if (res.status === 401 && challenge) {
          await res.body.dump();
          const auth = await this.auth.answer(upstream, challenge, scope);
          if (auth) res = await this.follow(upstream, url, path, method, headers, auth);
        }
        observe(res.status);
        if ((res.status >= 500 || res.status === 429) && canRetry) {
          const retryAfter = retryAfterSeconds(header(res.headers, 'retry-after'));
          const waitMs = retryAfter !== undefined ? retryAfter * 1000 : this.backoff(attempt);
          if (waitMs <= this.maxRetryAfterMs) {
            await res.body.dump();
            await sleep(waitMs);
            continue;
          }
        }
        return res;
      } catch (e) {
        observe('error');
        lastError = e;
        if (e instanceof AuthRefusedError) {
          // The upstream answered; our credentials (or its realm) are the problem: a 401 to map to DENIED.
          if (e.status !== undefined) return { status: e.status, headers: {}, body: emptyBody() };
          throw new UpstreamError(e.message, 'auth');
        }
        if (e instanceof UpstreamError && e.kind === 'refused') throw e;
        if (!canRetry) break;
        await sleep(this.backoff(attempt));
      }
    }
    throw new UpstreamError(`upstream ${upstream.name} unreachable: ${(lastError as Error)?.message ?? lastError}`);
  }

  private backoff(attempt: number): number {
    return this.baseBackoffMs * 2 ** attempt * (0.75 + Math.random() / 2);
  }

  /**
   * Follows redirects by hand. The upstream's own origin is trusted as configured; every hop elsewhere (a CDN)
   * goes through guardHop (the foreign-URL address guard: no loopback, private, link-local or metadata address
   * unless the upstream's allowPrivate lists it), never gets credentials, and must announce its body's length
   * (undici then refuses more bytes than that; the blob verifier caps and checks them).
   */
  private async follow(
    upstream: Upstream,
    start: string,
    path: string,
    method: 'GET' | 'HEAD',
    headers: Record<string, string>,
    auth: string | undefined,
  ): Promise<UpstreamResponse> {
    const origin = new URL(start).origin;
    let url = start;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const u = new URL(url);
      const own = u.origin === origin;
      const h: Record<string, string> = { 'user-agent': 'stevedore/0.1', ...headers };
      // Docker Hub redirects blobs to a CDN: credentials go to the registry's origin only.
      if (auth && own) h.authorization = auth;
      // Blob GETs have their own pool: manifests, tags and tokens never queue behind layer downloads.
      const pool = method === 'GET' && path.startsWith('/blobs/') ? this.blobAgent : this.agent;
      let dispatcher: Dispatcher = pool;
      if (!own) {
        try {
          dispatcher = await guardHop(u, upstream, { timeouts: this.opts.timeouts });
        } catch (e) {
          if (e instanceof RefusedError) throw new UpstreamError(`upstream ${upstream.name} redirected to ${u.origin}: ${e.message}`, 'refused');
          throw e;
        }
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, { method, headers: h, dispatcher });
      } finally {
        // A hop's own agent serves this one response: close once its body is done (close waits for it).
        if (dispatcher !== pool) void (dispatcher as Agent).close().catch(() => undefined);
      }
      const location = header(res.headers, 'location');
      if (REDIRECTS.has(res.statusCode) && location) {
        await res.body.dump();
        const next = new URL(location, url);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new UpstreamError(`redirect to ${next.protocol} refused`, 'refused');
        url = next.toString();
        continue;
      }
      if (!own && method === 'GET' && res.statusCode < 300 && header(res.headers, 'content-length') === undefined) {
        res.body.destroy();
        throw new UpstreamError(`upstream ${upstream.name} redirected to ${u.origin}, which sent no Content-Length; refused (unbounded body)`, 'refused');
      }
      return { status: res.statusCode, headers: res.headers, body: res.body };
    }
    throw new UpstreamError(`too many redirects from ${start}`);
  }

  async close(): Promise<void> {
    await Promise.all([this.agent.close(), this.blobAgent.close()]);
  }
}

/** A body for an answer we synthesise (callers may dump() or iterate it). */
function emptyBody(): Body {
  return Object.assign(Readable.from([]), { dump: async () => undefined }) as unknown as Body;
}

/** Reads a whole (small) body, failing past `max` bytes without buffering more. */
export async function readCapped(body: Body, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body) {
    n += (chunk as Buffer).length;
    if (n > max) {
      body.destroy();
      throw new RangeError(`body larger than ${max} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
