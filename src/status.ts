// The status page's data, read from the parts app.ts built (store, breaker, fills, eviction, warming, traffic ring),
// and the count of each finished request that feeds it and /metrics.
import { statfs } from 'node:fs/promises';
import type { Blobs } from './cache/blobs/service.js';
import type { Eviction } from './cache/eviction.js';
import type { Config } from './config/load.js';
import type { ForeignAdmin } from './foreign/ops.js';
import type { RequestInfo } from './http/middleware.js';
import type { StatusData } from './http/ui/data.js';
import { stevedoreVersion } from './jobs/bundle/layout.js';
import type { Warmer } from './jobs/warm.js';
import type { TrafficHistory } from './obs/history.js';
import type { Metrics } from './obs/metrics.js';
import type { Usage } from './store/usage.js';
import type { CircuitBreaker } from './upstream/breaker.js';

const TOP = 10;
/** Repositories counted for "top by pulls" (a bound on memory whatever clients ask for). */
const MAX_COUNTED = 5000;

/** Manifest GETs per repository since start: what "pulls" means on the status page. */
export class PullCounter {
  private readonly counts = new Map<string, number>();
  pull(name: string): void {
    const n = this.counts.get(name);
    if (n !== undefined) this.counts.set(name, n + 1);
    else if (this.counts.size < MAX_COUNTED) this.counts.set(name, 1);
  }
  top(n: number): { name: string; pulls: number }[] {
    return [...this.counts]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, n)
      .map(([name, pulls]) => ({ name, pulls }));
  }
}

/** The last error each upstream gave (client errors: network, 5xx, 429, circuit open). */
export class LastErrors {
  readonly byUpstream = new Map<string, { reason: string; at: number }>();
  record(upstream: string, reason: string, at = Date.now()): void {
    this.byUpstream.set(upstream, { reason, at });
  }
}

export interface StatusDeps {
  config: Config;
  startedAt: number;
  usage: Usage;
  breaker: CircuitBreaker;
  blobs: Blobs;
  eviction: Eviction;
  foreign: ForeignAdmin;
  warmer: Warmer | undefined;
  history: TrafficHistory;
  pulls: PullCounter;
  errors: LastErrors;
}

export async function statusData(deps: StatusDeps): Promise<StatusData> {
  const { config, usage } = deps;
  const t = usage.totals();
  const disk = await statfs(config.data).catch(() => undefined);
  const circuits = new Map(deps.breaker.snapshot().map((c) => [c.upstream, c]));
  return {
    version: stevedoreVersion(),
    now: Date.now(),
    startedAt: deps.startedAt,
    offline: config.offline,
    storage: {
      used: t.blobBytes + t.manifestBytes,
      blobs: t.blobs,
      manifests: t.manifests,
      ...(config.maxSize !== undefined ? { maxSize: config.maxSize } : {}),
      ...(config.minFreeDisk !== undefined ? { minFreeDisk: config.minFreeDisk } : {}),
      ...(disk ? { diskFree: disk.bavail * disk.bsize, diskSize: disk.blocks * disk.bsize } : {}),
    },
    traffic: { ...deps.history.total },
    history: deps.history.samples(),
    upstreams: Object.values(config.upstreams).map((u) => {
      const c = circuits.get(u.name);
      const e = deps.errors.byUpstream.get(u.name);
      return { name: u.name, url: u.url, open: c?.open ?? false, failures: c?.failures ?? 0, ...(e ? { lastError: e.reason, lastErrorAt: e.at } : {}) };
    }),
    fills: deps.blobs.fillsInProgress(),
    topBySize: usage
      .byRepository()
      .slice(0, TOP)
      .map((r) => ({ name: `${r.upstream}/${r.repo}`, bytes: r.bytes, blobs: r.blobs })),
    topByPulls: deps.pulls.top(TOP),
    foreign: deps.foreign
      .list()
      .slice(0, 50)
      .map((f) => ({
        digest: f.digest,
        status: f.status,
        size: f.size,
        ...(f.lastError ? { lastError: f.lastError } : {}),
        ...(f.urls[0] ? { url: f.urls[0] } : {}),
      })),
    pins: usage.pins().map((p) => ({ name: `${p.upstream}/${p.repo}:${p.reference}`, digest: p.digest, createdAt: p.createdAt })),
    evictions: deps.eviction.recentSweeps,
    warm: (deps.warmer?.recent ?? []).map((r) => ({
      entry: r.entry,
      startedAt: r.startedAt,
      ok: r.summary.ok,
      seconds: r.summary.seconds,
      fetchedBytes: r.summary.fetched.bytes,
      cachedBlobs: r.summary.cached.blobs,
      failed: r.summary.failed.blobs + r.summary.failed.images,
    })),
  };
}

/** Counts a finished request: Prometheus requests, cache outcomes and bytes; the status page's traffic and pulls. */
export function requestCounter(m: Metrics, history: TrafficHistory, pulls: PullCounter) {
  return (c: { req: { method: string } }, status: number, info: RequestInfo): void => {
    m.requests.inc({ route: info.route ?? 'other', method: c.req.method, status: String(status) });
    if ((info.route === 'manifests' || info.route === 'blobs') && info.outcome) {
      const kind = info.route === 'manifests' ? 'manifest' : 'blob';
      m.cache.inc({ kind, outcome: info.outcome });
      if (info.bytes) m.servedBytes.inc({ kind, outcome: info.outcome }, info.bytes);
      if (info.sendfile && info.bytes) m.sendfileBytes.inc(info.bytes);
      history.served(info.outcome, info.bytes ?? 0);
      if (kind === 'manifest' && c.req.method === 'GET' && info.upstream) pulls.pull(`${info.upstream}/${info.repo}`);
    }
  };
}
