// Prometheus metrics (prom-client), one registry per app instance so in-process tests never share counters.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface GaugeSources {
  fillsInFlight(): number;
  fillsQueued?(): number;
  /** False while the store refuses new blobs (full or read-only disk): misses pass through. */
  storeWritable?(): boolean;
  store(): { bytes: number; objects: number };
  circuits(): { upstream: string; open: boolean }[];
  foreign?(): Record<string, number>;
}

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly cache: Counter<'kind' | 'outcome'>;
  readonly servedBytes: Counter<'kind' | 'outcome'>;
  readonly sendfileBytes: Counter;
  readonly upstreamBytes: Counter<'kind'>;
  readonly upstreamSeconds: Histogram<'upstream' | 'method' | 'status'>;
  readonly upstreamErrors: Counter<'upstream' | 'reason'>;
  readonly evictions: Counter<'kind'>;
  readonly evictedBytes: Counter;
  readonly warmRuns: Counter<'result'>;
  readonly warmBytes: Counter;
  readonly warmBlobs: Counter<'status'>;
  readonly scrubPasses: Counter;
  readonly scrubBytes: Counter;
  readonly scrubCorrupt: Counter;
  readonly connectionsOpen: Gauge;
  readonly connectionsAccepted: Counter;
  readonly connectionsClosed: Counter<'reason'>;

  private processMetrics = false;

  /**
   * Adds prom-client's default collectors to this registry: process_resident_memory_bytes, process_open_fds,
   * nodejs_eventloop_lag_seconds, heap, GC. Once per instance, for serve only (a CLI command has no scraper).
   */
  collectProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  constructor(sources?: GaugeSources) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'stevedore_http_requests_total',
      help: 'HTTP requests by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.cache = new Counter({
      name: 'stevedore_cache_requests_total',
      help: 'Manifest and blob requests by cache outcome (hit, miss, coalesced, revalidated, stale, pass-through, redirect, foreign-fetch)',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.servedBytes = new Counter({
      name: 'stevedore_served_bytes_total',
      help: 'Body bytes sent to clients, by kind and cache outcome (outcome="hit": served from cache)',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.sendfileBytes = new Counter({
      name: 'stevedore_sendfile_bytes_total',
      help: 'Body bytes of blobs sent by the kernel with sendfile(2), zero-copy: hits, and misses followed from the temp file (the rest were copied through Node)',
      registers,
    });
    this.upstreamBytes = new Counter({
      name: 'stevedore_upstream_bytes_total',
      help: 'Body bytes fetched from upstream registries (and foreign URLs)',
      labelNames: ['kind'],
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: 'stevedore_upstream_request_seconds',
      help: 'Upstream request latency until response headers',
      labelNames: ['upstream', 'method', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'stevedore_upstream_errors_total',
      help: 'Upstream requests that failed (network, 5xx, circuit open, offline)',
      labelNames: ['upstream', 'reason'],
      registers,
    });
    this.evictions = new Counter({ name: 'stevedore_evictions_total', help: 'Objects evicted by the storage budget sweep', labelNames: ['kind'], registers });
    this.evictedBytes = new Counter({ name: 'stevedore_evicted_bytes_total', help: 'Bytes freed by eviction', registers });
    this.warmRuns = new Counter({
      name: 'stevedore_warm_runs_total',
      help: 'Scheduled warming runs by result (ok, failed)',
      labelNames: ['result'],
      registers,
    });
    this.warmBytes = new Counter({ name: 'stevedore_warm_bytes_total', help: 'Blob bytes fetched by scheduled warming', registers });
    this.warmBlobs = new Counter({
      name: 'stevedore_warm_blobs_total',
      help: 'Blobs seen by scheduled warming runs, by status (fetched, cached, skipped, failed)',
      labelNames: ['status'],
      registers,
    });
    this.scrubPasses = new Counter({ name: 'stevedore_scrub_passes_total', help: 'Finished passes of the background scrub', registers });
    this.scrubBytes = new Counter({ name: 'stevedore_scrub_bytes_total', help: 'Cached blob bytes re-hashed by the background scrub', registers });
    this.scrubCorrupt = new Counter({
      name: 'stevedore_scrub_corrupt_total',
      help: 'Cached blobs the scrub found not matching their digest (removed; fetched again on the next pull)',
      registers,
    });
    this.connectionsOpen = new Gauge({ name: 'stevedore_connections_open', help: 'Client connections open now', registers });
    this.connectionsAccepted = new Counter({
      name: 'stevedore_connections_accepted_total',
      help: 'Client connections accepted (churn: a front proxy that keeps its connections alive adds few)',
      registers,
    });
    this.connectionsClosed = new Counter({
      name: 'stevedore_connections_closed_total',
      help: 'Client connections closed by the server to protect itself (evicted: oldest idle one at the cap; refused: cap reached and none idle; stalled: a response made no progress; pipelined: too many requests in progress on one connection)',
      labelNames: ['reason'],
      registers,
    });
    if (!sources) return;
    new Gauge({
      name: 'stevedore_fills_in_flight',
      help: 'Blob downloads from upstream in progress',
      registers,
      collect() {
        this.set(sources.fillsInFlight());
      },
    });
    if (sources.fillsQueued) {
      const queued = sources.fillsQueued;
      new Gauge({
        name: 'stevedore_fills_queued',
        help: 'Blob downloads waiting for a slot (fills.maxConcurrent / fills.maxPerUpstream)',
        registers,
        collect() {
          this.set(queued());
        },
      });
    }
    if (sources.storeWritable) {
      const writable = sources.storeWritable;
      new Gauge({
        name: 'stevedore_store_writable',
        help: '1 while new blobs can be cached; 0 while the store refuses writes (full or read-only disk) and misses pass through',
        registers,
        collect() {
          this.set(writable() ? 1 : 0);
        },
      });
    }
    new Gauge({
      name: 'stevedore_store_bytes',
      help: 'Bytes of blobs in the store',
      registers,
      aggregator: 'max', // every worker reads the same shared store (cluster aggregation)
      collect() {
        this.set(sources.store().bytes);
      },
    });
    new Gauge({
      name: 'stevedore_store_objects',
      help: 'Blobs in the store',
      registers,
      aggregator: 'max',
      collect() {
        this.set(sources.store().objects);
      },
    });
    new Gauge({
      name: 'stevedore_upstream_circuit_open',
      help: '1 while the circuit breaker for an upstream is open',
      labelNames: ['upstream'],
      registers,
      aggregator: 'max',
      collect() {
        for (const c of sources.circuits()) this.set({ upstream: c.upstream }, c.open ? 1 : 0);
      },
    });
    if (sources.foreign) {
      const foreign = sources.foreign;
      new Gauge({
        name: 'stevedore_foreign_layer_requests',
        help: 'Foreign-layer blob requests by how they were resolved (since start)',
        labelNames: ['outcome'],
        registers,
        collect() {
          for (const [outcome, n] of Object.entries(foreign())) this.set({ outcome }, n);
        },
      });
    }
  }
}
