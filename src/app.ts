// Composition root: the ONLY place that constructs stores, clients and services, and wires them together.
import { constants, promises as fsp } from 'node:fs';
import type { Logger } from 'pino';
import { Blobs } from './cache/blobs.js';
import { Manifests } from './cache/manifests.js';
import { createProxy, type Proxy } from './cache/proxy.js';
import { Tags } from './cache/tags.js';
import type { Config } from './config.js';
import type { RequestInfo } from './http/middleware.js';
import { opsRoutes } from './http/ops.js';
import { createApp } from './http/routes.js';
import { Metrics } from './metrics.js';
import { BlobStore } from './store/blob-store.js';
import { Metadata } from './store/metadata.js';
import { CircuitBreaker } from './upstream/breaker.js';
import { UpstreamClient } from './upstream/client.js';
import { Registries } from './upstream/registries.js';

export interface Stevedore {
  app: ReturnType<typeof createApp>;
  proxy: Proxy;
  meta: Metadata;
  store: BlobStore;
  metrics: Metrics;
  breaker: CircuitBreaker;
  close(): Promise<void>;
}

export function buildApp(config: Config, log: Logger, now: () => number = Date.now): Stevedore {
  const store = new BlobStore(config.data);
  const meta = new Metadata(store.paths.db, now);
  const breaker = new CircuitBreaker({ failures: config.circuitBreaker.failures, cooldownMs: config.circuitBreaker.cooldown * 1000, now });
  let metrics: Metrics | undefined;
  const client = new UpstreamClient({
    timeouts: config.timeouts,
    retries: config.retries,
    offline: config.offline,
    breaker,
    observe: (upstream, method, status, seconds) => metrics?.upstreamSeconds.observe({ upstream, method, status: String(status) }, seconds),
    onError: (upstream, reason) => metrics?.upstreamErrors.inc({ upstream, reason }),
  });
  const registries = new Registries(config.upstreams, config.defaultUpstream);
  const onBlobBytes = (n: number): void => metrics?.upstreamBytes.inc({ kind: 'blob' }, n);
  const blobs = new Blobs({ client, store, meta, log, maxResumes: Math.max(config.retries, 1), onUpstreamBytes: onBlobBytes });
  const manifests = new Manifests({
    client, meta, log, now, tagTtlMs: config.tagTtl * 1000, offline: config.offline,
    onUpstreamBytes: (n) => metrics?.upstreamBytes.inc({ kind: 'manifest' }, n),
  });
  const tags = new Tags({ client, meta, tagTtlMs: config.tagTtl * 1000 });
  const proxy = createProxy(registries, blobs, manifests, tags);
  metrics = new Metrics({
    fillsInFlight: () => blobs.fillsInFlight,
    store: () => meta.blobTotals(),
    circuits: () => registries.list().map((u) => ({ upstream: u.name, open: breaker.isOpen(u.name) })),
  });
  const m = metrics;
  const onRequestDone = (c: { req: { method: string } }, status: number, info: RequestInfo): void => {
    m.requests.inc({ route: info.route ?? 'other', method: c.req.method, status: String(status) });
    if ((info.route === 'manifests' || info.route === 'blobs') && info.outcome) {
      const kind = info.route === 'manifests' ? 'manifest' : 'blob';
      m.cache.inc({ kind, outcome: info.outcome });
      if (info.bytes) m.servedBytes.inc({ kind, outcome: info.outcome }, info.bytes);
    }
  };
  const ops = opsRoutes({
    async ready() {
      const body: Record<string, unknown> = { offline: config.offline };
      let ok = true;
      try {
        body.store = meta.blobTotals();
      } catch (e) {
        ok = false;
        body.store = { error: (e as Error).message };
      }
      body.cacheWritable = await fsp.access(store.paths.tmpDir, constants.W_OK).then(() => true, () => false);
      body.upstreams = breaker.snapshot();
      return { ok, body };
    },
    async metrics() {
      return { contentType: m.registry.contentType, text: await m.registry.metrics() };
    },
  });
  const app = createApp({ proxy, log, ops, onRequestDone });
  return {
    app, proxy, meta, store, metrics: m, breaker,
    async close() {
      await client.close();
      meta.close();
    },
  };
}
