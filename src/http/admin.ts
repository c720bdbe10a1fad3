// The admin JSON API under /-/admin/ (never /v2/): foreign layers and mirrors; mounted only when a token is configured.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Hono } from 'hono';
import { FOREIGN_STATUSES, InvalidMirrorError, isForeignStatus, type ForeignAdmin, type ForeignStatus } from '../foreign/ops.js';
import { requireDigest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { Env } from './middleware.js';

export interface AdminDeps {
  token: string;
  foreign: ForeignAdmin;
  foreignStats: () => Record<string, number>;
}

const hash = (s: string): Buffer => createHash('sha256').update(s).digest();

/** An operator's mistake in a request: a 400 with the reason. */
class BadRequest extends Error {}

function statusQuery(value: string | undefined): ForeignStatus | undefined {
  if (value === undefined || isForeignStatus(value)) return value;
  throw new BadRequest(`unknown status "${value}"; one of ${FOREIGN_STATUSES.join(', ')}`);
}

/** {"urls": [...]} from the request body. */
async function urlsBody(c: Context<Env>): Promise<string[]> {
  const body = (await c.req.json().catch(() => undefined)) as { urls?: unknown } | undefined;
  const urls = body?.urls;
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
    throw new BadRequest('expected a JSON body {"urls": ["https://..."]}');
  }
  return urls as string[];
}

type Handler = (c: Context<Env>) => Promise<Response> | Response;

/** Operator mistakes are 400s with the reason; OciErrors (unknown digest, ...) go to the usual error envelope. */
const h =
  (fn: Handler): Handler =>
  async (c) => {
    try {
      return await fn(c);
    } catch (e) {
      if (e instanceof BadRequest || e instanceof InvalidMirrorError)
        return c.json({ errors: [{ code: 'BAD_REQUEST', message: e.message, detail: null }] }, 400);
      throw e;
    }
  };

export function adminRoutes(app: Hono<Env>, deps: AdminDeps): void {
  // Hashing both sides gives equal lengths, so the comparison is constant-time whatever the client sends.
  const expected = hash(`Bearer ${deps.token}`);
  app.use('/-/admin/*', async (c, next) => {
    if (!timingSafeEqual(hash(c.req.header('authorization') ?? ''), expected)) {
      return c.json(new OciError('UNAUTHORIZED', { reason: 'admin API: send Authorization: Bearer <adminToken>' }).toBody(), 401, {
        'www-authenticate': 'Bearer realm="stevedore-admin"',
      });
    }
    await next();
  });
  const f = deps.foreign;
  const digest = (c: Context<Env>) => requireDigest(c.req.param('digest') ?? '');
  app.get(
    '/-/admin/foreign',
    h((c) => c.json({ layers: f.list(statusQuery(c.req.query('status'))) })),
  );
  app.get(
    '/-/admin/foreign/stats',
    h((c) => c.json(deps.foreignStats())),
  );
  app.get(
    '/-/admin/foreign/mirrors',
    h((c) => c.json({ prefixes: f.prefixMirrors() })),
  );
  app.post(
    '/-/admin/foreign/mirrors',
    h(async (c) => c.json({ added: f.addMirrors('', await urlsBody(c)) })),
  );
  app.delete(
    '/-/admin/foreign/mirrors',
    h(async (c) => c.json({ removed: f.removeMirrors('', await urlsBody(c)) })),
  );
  app.post(
    '/-/admin/foreign/check',
    h(async (c) => c.json({ layers: await f.check() })),
  );
  app.get(
    '/-/admin/foreign/:digest',
    h((c) => c.json(f.show(digest(c)))),
  );
  app.post(
    '/-/admin/foreign/:digest/mirrors',
    h(async (c) => c.json({ added: f.addMirrors(digest(c), await urlsBody(c)) })),
  );
  app.delete(
    '/-/admin/foreign/:digest/mirrors',
    h(async (c) => c.json({ removed: f.removeMirrors(digest(c), await urlsBody(c)) })),
  );
  app.post(
    '/-/admin/foreign/:digest/check',
    h(async (c) => c.json({ layers: await f.check(digest(c)) })),
  );
  app.post(
    '/-/admin/foreign/:digest/fetch',
    h(async (c) => c.json(await f.prefetch(digest(c)))),
  );
}
