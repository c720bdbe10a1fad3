// Per-request context: a request id, a child logger, and one access-log line with the cache outcome and bytes.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import type { Logger } from 'pino';
import { API_GUARD } from './errors.js';
import { targetPath } from './path.js';

export interface RequestInfo {
  route?: string;
  upstream?: string;
  repo?: string;
  /** The authenticated client (never a credential). */
  user?: string;
  digest?: string;
  reference?: string;
  outcome?: string;
  bytes?: number;
  /** The body left by sendfile(2) (zero-copy), not through Node. */
  sendfile?: boolean;
}

export type Env = { Variables: { log: Logger; info: RequestInfo; rawPath: string; streamed?: boolean } };

/** The Node request and response under @hono/node-server; both undefined in app.request() tests. */
export const nodeOf = (c: Context<Env>): { incoming?: IncomingMessage; outgoing?: ServerResponse } =>
  (c.env as { incoming?: IncomingMessage; outgoing?: ServerResponse } | undefined) ?? {};

/** API_GUARD as pairs, made once (the manifest hot path runs this per request). */
const GUARD_HEADERS = Object.entries(API_GUARD);

export function requestContext(log: Logger, onDone?: (c: Context<Env>, status: number, info: RequestInfo) => void): MiddlewareHandler<Env> {
  return async (c, next) => {
    const started = performance.now();
    const reqId = c.req.header('x-request-id') ?? randomUUID();
    const child = log.child({ reqId });
    const info: RequestInfo = {};
    c.set('log', child);
    c.set('info', info);
    const { incoming, outgoing: out } = nodeOf(c);
    // The raw target, before any URL normalisation could hide a "..".
    c.set('rawPath', targetPath(incoming?.url ?? new URL(c.req.url).pathname));
    // Set on the socket's response directly: reading or writing c.res.headers would build a Headers object
    // for every request (measurable on the manifest hot path). writeHead keeps headers set this way.
    // Registry answers are data (manifests keep the upstream's Content-Type, whatever it says): never a page a
    // browser renders or runs on this origin, where the status page lives.
    const guard = c.get('rawPath').startsWith('/v2/') ? GUARD_HEADERS : [];
    out?.setHeader('x-request-id', reqId);
    for (const [k, v] of guard) out?.setHeader(k, v);
    await next();
    const streamed = out !== undefined && c.get('streamed') === true;
    if (!out) {
      c.res.headers.set('x-request-id', reqId);
      for (const [k, v] of guard) c.res.headers.set(k, v);
    }
    const finish = (): void => {
      const status = streamed ? out.statusCode : c.res.status;
      // The status page refreshes itself every few seconds: its requests would drown the access log at info.
      const level = info.route === 'ui' ? 'debug' : 'info';
      child[level]({ method: c.req.method, path: c.get('rawPath'), status, ms: Math.round(performance.now() - started), ...info }, 'request');
      onDone?.(c, status, info);
    };
    if (streamed) out.once('close', finish);
    else finish();
  };
}
