// Composition root: the ONLY place that constructs stores, clients and services, and wires them together.
import type { Logger } from 'pino';
import { Blobs } from './cache/blobs/service.js';
import { AccessTracker } from './cache/access.js';
import { clearPartials, Eviction } from './cache/eviction.js';
import { ForeignLayers } from './foreign/layers.js';
import { ForeignAdmin } from './foreign/ops.js';
import { ForeignPolicy } from './foreign/policy.js';
import { Manifests } from './cache/manifests.js';
import { prefetch, type PrefetchRun } from './jobs/prefetch.js';
import type { PrefetchItem, PrefetchOptions } from './jobs/prefetch-model.js';
import { Warmer } from './jobs/warm.js';
import { createProxy, type Proxy } from './cache/proxy.js';
import { PassthroughGate } from './cache/passthrough.js';
import { Referrers } from './cache/referrers.js';
import { Tags } from './cache/tags.js';
import type { Config } from './config/load.js';
import type { Digest } from './oci/digest.js';
import { adminRoutes } from './http/admin.js';
import { opsRoutes } from './http/ops.js';
import { createApp } from './http/routes.js';
import type { AttemptLedger } from './http/attempts.js';
import { ClientAuth } from './http/client-auth.js';
import { TrafficHistory } from './obs/history.js';
import { Metrics } from './obs/metrics.js';
import { uiRoutes } from './http/ui/routes.js';
import { readiness } from './ready.js';
import { LastErrors, PullCounter, requestCounter, statusData } from './status.js';
import { BlobStore } from './store/blob-store.js';
import { ForeignStore } from './store/foreign.js';
import { ReferrersStore } from './store/referrers.js';
import { Metadata } from './store/metadata.js';
import { reconcile } from './store/reconcile.js';
import { Usage } from './store/usage.js';
import { addressIn, cidrList } from './upstream/cidr.js';
import { CircuitBreaker } from './upstream/breaker.js';
import { RateLimiter } from './upstream/rate-limit.js';
import { MirrorChain } from './upstream/chain.js';
import { Scrubber } from './jobs/scrub.js';
import { parseDuration } from './config/warm.js';
import { UpstreamClient } from './upstream/client.js';
import { Registries } from './upstream/registries.js';

export interface Stevedore {
  app: ReturnType<typeof createApp>;
  proxy: Proxy;
  meta: Metadata;
  store: BlobStore;
  metrics: Metrics;
  breaker: CircuitBreaker;
  usage: Usage;
  eviction: Eviction;
  foreign: ForeignLayers;
  foreignAdmin: ForeignAdmin;
  /** Fills the cache with the selected part of each image (prefetch command, scheduled warming). */
  prefetch(items: PrefetchItem[], opts: PrefetchOptions): PrefetchRun;
  /** Scheduled warming (config `warm`); started by start(). */
  warmer: Warmer | undefined;
  /**
   * Startup reconciliation (unless the cluster primary did it: `cleanup: false`), the access-time flush, and
   * for the leader (the only process, or worker 1 of `--workers N`) the periodic sweep and scheduled warming.
   */
  start(opts?: { cleanup?: boolean; leader?: boolean }): Promise<void>;
  /** Waits for fills in flight (bounded by the caller), flushes access times, closes SQLite. */
  close(): Promise<void>;
}

/** Startup work on the data dir that must run once, before any process serves it: empty tmp/, reconcile rows and files. */
export async function prepareDataDir(config: Config, log: Logger): Promise<void> {
  const store = new BlobStore(config.data);
  const meta = new Metadata(store.paths.db);
  try {
    store.removeLeftovers();
    const r = await reconcile(store, meta);
    if (r.rowsDropped || r.filesAdopted || r.strayFiles) log.warn(r, 'store reconciled at startup');
  } finally {
    meta.close();
  }
}

export interface BuildOptions {
  /** Under `--workers N`: /metrics answers the sum over all workers (asked of the cluster primary). */
  clusterMetrics?: () => Promise<{ contentType: string; text: string }>;
  /** Under `--workers N`: failed authentication counted by the cluster primary for all workers. */
  authAttempts?: AttemptLedger;
}

export function buildApp(config: Config, log: Logger, now: () => number = Date.now, opts: BuildOptions = {}): Stevedore {
  const store = new BlobStore(config.data);
  const meta = new Metadata(store.paths.db, now);
  const breaker = new CircuitBreaker({ failures: config.circuitBreaker.failures, cooldownMs: config.circuitBreaker.cooldown * 1000, now });
  let metrics: Metrics | undefined;
  // For the status page: traffic per minute, pulls per repository, each upstream's last error.
  const history = new TrafficHistory();
  const pulls = new PullCounter();
  const lastErrors = new LastErrors();
  const startedAt = now();
  const client = new UpstreamClient({
    timeouts: config.timeouts,
    retries: config.retries,
    offline: config.offline,
    breaker,
    observe: (upstream, method, status, seconds) => metrics?.upstreamSeconds.observe({ upstream, method, status: String(status) }, seconds),
    onError: (upstream, reason) => {
      metrics?.upstreamErrors.inc({ upstream, reason });
      lastErrors.record(upstream, reason, now());
    },
  });
  // Every cache-layer request goes through the upstream's endpoints in order (upstreams.<name>.endpoints).
  const upstream = new MirrorChain(client);
  const registries = new Registries(config.upstreams, config.defaultUpstream);
  const usage = new Usage(meta.db);
  const access = new AccessTracker(meta, now);
  const onBlobBytes = (n: number): void => {
    metrics?.upstreamBytes.inc({ kind: 'blob' }, n);
    history.fetched(n);
  };
  const foreign = new ForeignLayers({
    store: new ForeignStore(meta.db),
    policy: new ForeignPolicy(config.foreign.rules),
    config: config.foreign,
    log,
    now,
    offline: config.offline,
    fill: { store, meta, log, maxResumes: Math.max(config.retries, 1) },
  });
  const foreignAdmin = new ForeignAdmin(foreign);
  const budgeted = config.maxSize !== undefined || config.minFreeDisk !== undefined;
  let sweepSoon: NodeJS.Timeout | undefined;
  const sweepShortly = (): void => {
    if (budgeted && !sweepSoon)
      sweepSoon = setTimeout(() => {
        sweepSoon = undefined;
        void sweep();
      }, 1000).unref();
  };
  const limiter = config.upstreamRate !== undefined ? new RateLimiter(config.upstreamRate) : undefined;
  const blobs = new Blobs({
    ...(limiter ? { throttle: (n: number) => limiter.take(n) } : {}),
    client: upstream,
    store,
    meta,
    log,
    maxResumes: Math.max(config.retries, 1),
    idleGraceMs: config.fills.idleGrace * 1000,
    ...(config.maxSize !== undefined ? { maxBlobBytes: config.maxSize } : {}),
    maxFills: config.fills.maxConcurrent,
    maxFillsPerUpstream: config.fills.maxPerUpstream,
    onUpstreamBytes: onBlobBytes,
    foreign,
    onAccess: (d) => access.touch(d),
    // A commit may push the store over budget, and a full disk wants room: one sweep shortly, however many ask.
    onCommit: () => sweepShortly(),
    onStoreFull: () => {
      // Interrupted downloads are the cheapest bytes to lose when the disk is full.
      void clearPartials(store).then(
        (r) => r.files > 0 && log.warn(r, 'store full: removed partial downloads'),
        (e: unknown) => log.warn({ err: (e as Error).message }, 'could not clear partial downloads'),
      );
      sweepShortly();
    },
  });
  const manifestDeps = {
    client: upstream,
    meta,
    log,
    now,
    tagTtlMs: config.tagTtl * 1000,
    offline: config.offline,
    onUpstreamBytes: (n: number) => {
      metrics?.upstreamBytes.inc({ kind: 'manifest' }, n);
      history.fetched(n);
    },
    onAccess: (d: Digest) => access.touch(d),
    onManifest: foreign.onManifest,
  };
  const manifests = new Manifests(manifestDeps);
  const referrers = new Referrers({
    client: upstream,
    store: new ReferrersStore(meta.db),
    manifests,
    log,
    now,
    tagTtlMs: config.tagTtl * 1000,
    offline: config.offline,
    onUpstreamBytes: (n: number) => metrics?.upstreamBytes.inc({ kind: 'manifest' }, n),
  });
  const prefetchDeps = {
    manifests,
    blobs,
    referrers,
    resolve: (name: string) => registries.resolve(name, undefined),
    isCached: (d: Digest) => meta.blobSize(d) !== undefined,
  };
  const eviction = new Eviction({
    meta,
    usage,
    store,
    access,
    log,
    maxSize: config.maxSize,
    minFreeDisk: config.minFreeDisk,
    inUse: (d) => blobs.inUse(d),
    forget: (d) => {
      manifests.forget(d);
      blobs.forget(d);
    },
    onEvict: (kind, size) => {
      metrics?.evictions.inc({ kind });
      metrics?.evictedBytes.inc(size);
    },
  });
  const sweep = () => eviction.sweep().catch((e: unknown) => log.error({ err: e }, 'eviction sweep failed'));
  const tags = new Tags({ client: upstream, meta, tagTtlMs: config.tagTtl * 1000 });
  // Passthrough upstreams are single-url (the schema refuses endpoints with passthrough): the gate asks the client.
  const proxy = createProxy(registries, blobs, manifests, tags, new PassthroughGate(client), referrers);
  metrics = new Metrics({
    fillsInFlight: () => blobs.fillsInFlight,
    fillsQueued: () => blobs.fillsQueued,
    storeWritable: () => blobs.storeRefusal === undefined,
    store: () => meta.blobTotals(),
    circuits: () => registries.list().flatMap((u) => (u.endpoints ?? [u]).map((e) => ({ upstream: e.name, open: breaker.isOpen(e.name) }))),
    foreign: () => foreign.stats(),
  });
  const m = metrics;
  const onRequestDone = requestCounter(m, history, pulls);
  const ops = opsRoutes({
    ready: () => readiness({ offline: config.offline, meta, store, blobs, breaker }),
    async metrics() {
      if (opts.clusterMetrics) return opts.clusterMetrics();
      return { contentType: m.registry.contentType, text: await m.registry.metrics() };
    },
  });
  const app = createApp({
    proxy,
    log,
    ops,
    onRequestDone,
    passthroughUpstreams: Object.values(config.upstreams).some((u) => u.passthrough),
    ...(config.clientAuth ? { auth: new ClientAuth(config.clientAuth, opts.authAttempts) } : {}),
    ...(config.accelRedirect ? { accelPrefix: config.accelRedirect.prefix } : {}),
    sendfile: config.server.sendfile,
    ...(config.server.trustedProxies.length > 0 ? { trustedProxy: addressIn(cidrList(config.server.trustedProxies)) } : {}),
  });
  if (config.adminToken) adminRoutes(app, { token: config.adminToken, foreign: foreignAdmin, foreignStats: () => foreign.stats() });
  const timers: NodeJS.Timeout[] = [];
  const scrubber =
    config.scrub.every === 'off'
      ? undefined
      : new Scrubber({
          store,
          meta,
          log,
          everyMs: parseDuration(config.scrub.every)!,
          bytesPerSecond: config.scrub.rate,
          forget: (d) => {
            manifests.forget(d);
            blobs.forget(d);
          },
          onBytes: (n) => m.scrubBytes.inc(n),
          onPass: (r) => {
            m.scrubPasses.inc();
            m.scrubCorrupt.inc(r.corrupt.length);
          },
        });
  const runPrefetch = (items: PrefetchItem[], opts: PrefetchOptions) => prefetch(prefetchDeps, items, opts);
  const warmer = config.warm.length > 0 ? new Warmer({ entries: config.warm, prefetch: runPrefetch, log, metrics: m }) : undefined;
  const statusDeps = { config, startedAt, usage, breaker, blobs, eviction, foreign: foreignAdmin, warmer, history, pulls, errors: lastErrors };
  uiRoutes(app, { status: () => statusData(statusDeps), clientAuth: !!config.clientAuth, ...(config.adminToken ? { adminToken: config.adminToken } : {}) });
  return {
    app,
    proxy,
    meta,
    store,
    metrics: m,
    breaker,
    usage,
    eviction,
    foreign,
    foreignAdmin,
    prefetch: runPrefetch,
    warmer,
    async start({ cleanup = true, leader = true } = {}) {
      m.collectProcessMetrics();
      if (cleanup) {
        store.removeLeftovers();
        const r = await reconcile(store, meta);
        if (r.rowsDropped || r.filesAdopted || r.strayFiles) log.warn(r, 'store reconciled at startup');
      }
      timers.push(setInterval(() => access.flush(), 10_000).unref());
      if (!leader) return;
      if (budgeted) {
        timers.push(setInterval(() => void sweep(), config.sweepInterval * 1000).unref());
        await sweep();
      }
      warmer?.start();
      scrubber?.start();
    },
    async close() {
      await warmer?.stop();
      await scrubber?.stop();
      for (const t of timers) clearInterval(t);
      if (sweepSoon) clearTimeout(sweepSoon);
      await blobs.drain();
      access.flush();
      await client.close();
      meta.close();
    },
  };
}
