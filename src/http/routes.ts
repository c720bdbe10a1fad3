// The /v2/ API: one handler that parses the raw path and dispatches; push/delete/upload answer UNSUPPORTED.
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { Proxy } from '../cache/proxy.js';
import { requireDigest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { errorResponse } from './errors.js';
import { nodeOf, requestContext, type Env, type RequestInfo } from './middleware.js';
import { hasDotSegment, parseV2Path } from './path.js';
import { sendBytes } from './respond.js';
import { blobRoute } from './blobs.js';
import { manifestRoute } from './manifests.js';
import { referrersRoute } from './referrers.js';
import { tagsRoute } from './tags.js';
import type { Context } from 'hono';
import { clientAddressOf } from './client-address.js';
import { CHALLENGE, type ClientAuth, type Identity } from './client-auth.js';

/** The client's address (the failed-attempt limit is per address): the socket's, or what a trusted proxy forwarded. */
function clientAddress(c: Context<Env>, trusted?: (address: string) => boolean): string {
  const socket = nodeOf(c).incoming?.socket.remoteAddress;
  return clientAddressOf(socket, c.req.header('x-forwarded-for'), trusted);
}

export interface AppOptions {
  proxy: Proxy;
  /** Client authentication and access rules (config `auth:`); without it every client may pull everything. */
  auth?: ClientAuth;
  /** Some upstream takes each client's own credentials (clientCredentials: passthrough). */
  passthroughUpstreams?: boolean;
  log: Logger;
  onRequestDone?: (c: Context<Env>, status: number, info: RequestInfo) => void;
  ops?: (app: Hono<Env>) => void;
  /** config accelRedirect.prefix: cached blobs are sent by nginx in front (X-Accel-Redirect). */
  accelPrefix?: string;
  /** config server.sendfile: warm hits leave by sendfile(2) where the socket allows it. */
  sendfile?: boolean;
  /** config server.trustedProxies: their X-Forwarded-For names the client. */
  trustedProxy?: (address: string) => boolean;
}

export function createApp(opts: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  app.use('*', requestContext(opts.log, opts.onRequestDone));
  // Routing sees the normalised URL: a ".." there could lead out of /v2/ to an endpoint the raw path never named.
  app.use('*', async (c, next) => {
    if (hasDotSegment(c.get('rawPath'))) throw new OciError('NAME_INVALID', { reason: 'path traversal (a "." or ".." segment)', path: c.get('rawPath') });
    await next();
  });
  app.onError((err, c) => errorResponse(err, c.req.method, c.get('log')));
  app.notFound((c) => errorResponse(new OciError('NAME_UNKNOWN', { reason: 'no such endpoint', path: c.get('rawPath') }), c.req.method));
  opts.ops?.(app);
  app.all('/v2', (c) => c.redirect('/v2/', 301));
  app.all('/v2/*', async (c) => {
    const method = c.req.method;
    const route = parseV2Path(c.get('rawPath'));
    c.get('info').route = route.kind;
    const readOnly = method === 'GET' || method === 'HEAD';
    const auth = opts.auth;
    const authorization = c.req.header('authorization');
    const identify = async (): Promise<Identity> => {
      const who = auth ? await auth.authenticate(authorization, clientAddress(c, opts.trustedProxy)) : 'anonymous';
      if (who !== 'anonymous') c.get('info').user = who.name;
      return who;
    };
    switch (route.kind) {
      case 'base': {
        if (!readOnly) throw new OciError('UNSUPPORTED', { method });
        if (auth) {
          // The ping `docker login` and friends use: with auth on, no credentials means "log in" (unless anonymous
          // may pull). Credentials meant for a passthrough upstream are checked there, per repository.
          let who: Identity | undefined;
          try {
            who = await identify();
          } catch (e) {
            if (!(opts.passthroughUpstreams && e instanceof OciError && e.code === 'UNAUTHORIZED')) throw e;
          }
          if (who === 'anonymous' && !auth.anonymousAllowed) throw new OciError('UNAUTHORIZED', { reason: 'authentication required' }, undefined, CHALLENGE);
        }
        return sendBytes(200, { 'content-type': 'application/json' }, method === 'HEAD' ? null : Buffer.from('{}'));
      }
      case 'uploads':
        throw new OciError('UNSUPPORTED', { reason: 'stevedore is a read-only mirror; push to the upstream registry' });
      case 'manifests':
      case 'blobs':
      case 'referrers':
      case 'tags': {
        if (!readOnly) throw new OciError('UNSUPPORTED', { reason: `stevedore is a read-only mirror; ${method} is not supported` });
        let target = opts.proxy.resolve(route.name, c.req.query('ns'));
        Object.assign(c.get('info'), { upstream: target.upstream.name, repo: target.repo });
        if (target.upstream.passthrough) {
          // The upstream is the authority: it confirms this client's own credentials for this repository.
          // Referrers: whoever may read the subject manifest may read what refers to it.
          const path =
            route.kind === 'tags'
              ? '/tags/list'
              : route.kind === 'referrers'
                ? `/manifests/${requireDigest(route.digest)}`
                : `/${route.kind}/${route.reference}`;
          const kind = route.kind === 'manifests' || route.kind === 'referrers' ? 'manifest' : route.kind === 'blobs' ? 'blob' : 'tags';
          target = await opts.proxy.admit(target, path, authorization, kind);
        } else if (auth) auth.authorize(await identify(), target.upstream.name, target.repo);
        if (route.kind === 'manifests') return manifestRoute(c, opts.proxy, target, route.reference);
        if (route.kind === 'blobs') return blobRoute(c, opts.proxy, target, route.reference, opts);
        if (route.kind === 'referrers') return referrersRoute(c, opts.proxy, target, route.digest);
        return tagsRoute(c, opts.proxy, target, route.name);
      }
      default:
        if (!readOnly) throw new OciError('UNSUPPORTED', { method });
        throw new OciError('NAME_UNKNOWN', { reason: 'no such endpoint', path: c.get('rawPath') });
    }
  });
  return app;
}
