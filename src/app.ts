// Composition root: the ONLY place that constructs stores, clients and services, and wires them together.
import type { Logger } from 'pino';
import { Blobs } from './cache/blobs.js';
import { Manifests } from './cache/manifests.js';
import { createProxy, type Proxy } from './cache/proxy.js';
import { Tags } from './cache/tags.js';
import type { Config } from './config.js';
import { opsRoutes } from './http/ops.js';
import { createApp } from './http/routes.js';
import { BlobStore } from './store/blob-store.js';
import { Metadata } from './store/metadata.js';
import { UpstreamClient } from './upstream/client.js';
import { Registries } from './upstream/registries.js';

export interface Stevedore {
  app: ReturnType<typeof createApp>;
  proxy: Proxy;
  meta: Metadata;
  store: BlobStore;
  close(): Promise<void>;
}

export function buildApp(config: Config, log: Logger, now: () => number = Date.now): Stevedore {
  const store = new BlobStore(config.data);
  const meta = new Metadata(store.paths.db, now);
  const client = new UpstreamClient({ timeouts: config.timeouts, retries: config.retries });
  const registries = new Registries(config.upstreams, config.defaultUpstream);
  const blobs = new Blobs({ client, store, meta, log, maxResumes: Math.max(config.retries, 1) });
  const manifests = new Manifests({ client, meta, log, tagTtlMs: config.tagTtl * 1000, now });
  const tags = new Tags({ client, meta, tagTtlMs: config.tagTtl * 1000 });
  const proxy = createProxy(registries, blobs, manifests, tags);
  const app = createApp({ proxy, log, ops: opsRoutes });
  return {
    app,
    proxy,
    meta,
    store,
    async close() {
      await client.close();
      meta.close();
    },
  };
}
