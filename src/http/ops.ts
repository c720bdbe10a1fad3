// Operational endpoints outside /v2/: liveness.
import type { Hono } from 'hono';
import type { Env } from './middleware.js';

export function opsRoutes(app: Hono<Env>): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
}
