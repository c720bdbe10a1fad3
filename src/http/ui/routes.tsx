// GET /-/ui/ (the status page) and /-/ui/data (its JSON, with each card rendered for the live refresh); read-only.
import { randomBytes } from 'node:crypto';
import type { Hono } from 'hono';
import type { Env } from '../middleware.js';
import { canViewStatus } from './access.js';
import type { StatusData } from './data.js';
import { Page } from './page.js';
import { SECTIONS } from './sections.js';

export interface UiDeps {
  status(): Promise<StatusData>;
  adminToken?: string;
  /** Client authentication is configured: without an admin token the page stays closed. */
  clientAuth?: boolean;
}

const NO_STORE = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' };

export function uiRoutes(app: Hono<Env>, deps: UiDeps): void {
  app.use('/-/ui/*', async (c, next) => {
    c.get('info').route = 'ui';
    if (!canViewStatus(c.req.header('authorization'), deps.adminToken, deps.clientAuth)) {
      if (deps.adminToken === undefined) return c.text('client authentication is on: set adminToken to open the status page\n', 403);
      return c.text('the status page needs the admin token (as the password of Basic auth, or Authorization: Bearer <token>)\n', 401, {
        'www-authenticate': 'Basic realm="stevedore status", charset="UTF-8"',
      });
    }
    await next();
  });
  app.get('/-/ui', (c) => c.redirect('/-/ui/', 301));
  app.get('/-/ui/', async (c) => {
    const d = await deps.status();
    const nonce = randomBytes(16).toString('base64');
    const html = `<!doctype html>${await (<Page d={d} nonce={nonce} />).toString()}`;
    return c.html(html, 200, {
      ...NO_STORE,
      'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
  });
  app.get('/-/ui/data', async (c) => {
    const d = await deps.status();
    const sections: Record<string, string> = {};
    for (const [id, Card] of Object.entries(SECTIONS)) sections[id] = await (<Card d={d} />).toString();
    return c.json({ status: d, sections }, 200, NO_STORE);
  });
}
