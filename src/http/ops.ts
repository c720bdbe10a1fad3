// Operational endpoints outside /v2/: liveness, readiness (store + upstream state), Prometheus metrics.
import type { Hono } from 'hono';
import type { Env } from './middleware.js';

export interface OpsSources {
  /** Readiness: ok=false when the metadata store cannot be read; body lists the details. */
  ready(): Promise<{ ok: boolean; body: Record<string, unknown> }>;
  metrics(): Promise<{ contentType: string; text: string }>;
}

export function opsRoutes(sources: OpsSources): (app: Hono<Env>) => void {
  return (app) => {
    app.get('/healthz', (c) => c.json({ status: 'ok' }));
    app.get('/readyz', async (c) => {
      const r = await sources.ready();
      return c.json({ status: r.ok ? 'ready' : 'not ready', ...r.body }, r.ok ? 200 : 503);
    });
    app.get('/metrics', async (c) => {
      const m = await sources.metrics();
      return c.body(m.text, 200, { 'content-type': m.contentType });
    });
  };
}
