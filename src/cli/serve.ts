// `stevedore serve`: listen (one process, or `--workers N` under node:cluster sharing the port and the data dir),
// and on SIGTERM/SIGINT stop accepting, let in-flight responses finish, close SQLite.
import { getRequestListener } from '@hono/node-server';
import cluster, { type Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import os from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { buildApp, prepareDataDir, type BuildOptions } from '../app.js';
import type { Config } from '../config/load.js';
import { adapterErrorResponse } from '../http/errors.js';
import { createLogger } from '../obs/log.js';
import { reclaimAfterBursts } from '../obs/reclaim.js';
import { sendfileUnavailable } from '../sendfile/native.js';
import { answerAttempts, ClusterAttempts } from './cluster-auth.js';
import { answerParseErrors, limitConnections, serverOptions } from './connections.js';
import { LocalAttempts } from '../http/attempts.js';

const GRACE_MS = 10_000;
/** Worker index (1..N) in the environment of a cluster worker; worker 1 is the leader (sweeps, warming). */
const WORKER_ENV = 'STEVEDORE_WORKER_INDEX';
const METRICS_MSG = 'stevedore:metrics';
/**
 * V8's young generation capped at 2 MiB per semi-space (default 16): measured 10 parallel warm downloads at
 * ~95 MiB RSS instead of ~110, with no throughput cost (a blob hit allocates little). `npm start` passes it too.
 */
export const NODE_FLAGS = ['--max-semi-space-size=2'];
/**
 * glibc's malloc with a fixed mmap threshold: every allocation of 128 KiB or more (send buffers, socket buffers)
 * is its own mapping, unmapped when freed. With the default dynamic threshold, freeing one large buffer raises the
 * threshold and later ones come from the heap, which is not given back: after 300 stalled clients of a cached
 * 64 MiB blob left, RSS stayed at ~480 MiB instead of returning to ~140. glibc reads it only at process start, so
 * the launchers (npm start, Dockerfile, systemd unit) set it, and the cluster primary sets it for its workers.
 */
export const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072' };

/** MALLOC_ENV unless the operator tuned malloc already. */
function mallocEnv(): Record<string, string> {
  const e = process.env;
  return e.MALLOC_MMAP_THRESHOLD_ !== undefined || (e.GLIBC_TUNABLES ?? '').includes('mmap_threshold') ? {} : MALLOC_ENV;
}

export async function serve(config: Config): Promise<void> {
  const workers = config.workers ?? os.availableParallelism();
  if (workers <= 1) return serveOne(config, { cleanup: true, leader: true });
  if (cluster.isPrimary) return primary(config, workers);
  // --upstream-rate bounds all upstream traffic together: each of the N workers takes its share.
  const share = config.upstreamRate !== undefined ? { ...config, upstreamRate: config.upstreamRate / workers } : config;
  // Failed authentication is counted by the primary for all workers (the limit is per server, not per worker).
  const authAttempts = config.clientAuth ? new ClusterAttempts() : undefined;
  return serveOne(
    share,
    { cleanup: false, leader: process.env[WORKER_ENV] === '1' },
    { clusterMetrics: askPrimaryForMetrics, ...(authAttempts ? { authAttempts } : {}) },
  );
}

/** One serving process: the whole server (`--workers 1`) or one cluster worker. */
async function serveOne(config: Config, role: { cleanup: boolean; leader: boolean }, opts: BuildOptions = {}): Promise<void> {
  const base = createLogger(config.logLevel, undefined, config.logFormat);
  // Under --workers N every line says which worker wrote it.
  const log = cluster.isWorker ? base.child({ worker: Number(process.env[WORKER_ENV]) }) : base;
  const s = buildApp(config, log, Date.now, opts);
  await s.start(role);
  if (cluster.isWorker) {
    // Constructing one installs prom-client's worker side: it answers the primary's requests with this registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([s.metrics.registry]);
  }
  const tls = config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const readTls = (t: { cert: string; key: string }) => ({ cert: readFileSync(t.cert), key: readFileSync(t.key) });
  // The adapter's listener with our answer for what it cannot make a request of (its default is an empty 400).
  const listener = getRequestListener(s.app.fetch, { hostname: config.host, errorHandler: adapterErrorResponse });
  const server = (
    tls ? createHttpsServer({ ...readTls(tls), ...serverOptions(config.server) }, listener) : createHttpServer(serverOptions(config.server), listener)
  ) as Server;
  server.listen(config.port, config.host);
  if (tls) {
    // Renewed certificates (cert-manager, certbot) take effect without a restart: new connections use them.
    // Under --workers N the primary passes SIGHUP on to every worker.
    process.on('SIGHUP', () => {
      try {
        (server as unknown as HttpsServer).setSecureContext(readTls(tls));
        log.info({ cert: tls.cert }, 'TLS certificate reloaded');
      } catch (e) {
        log.error({ err: (e as Error).message, cert: tls.cert }, 'TLS certificate reload failed; keeping the previous one');
      }
    });
  }
  const conns = limitConnections(server, config.server, log, s.metrics);
  answerParseErrors(server);
  // Clients that left (300 stalled readers, say) leave buffers only a GC frees: hand them back once they are gone.
  reclaimAfterBursts({
    connections: conns.open,
    onReclaim: (before, after, heap) =>
      log.debug(
        {
          arrayBuffersMiB: Math.round(before / 2 ** 20),
          afterMiB: Math.round(after / 2 ** 20),
          heapMiB: Math.round(heap.before / 2 ** 20),
          heapAfterMiB: Math.round(heap.after / 2 ** 20),
        },
        'memory reclaimed after a burst',
      ),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (e) {
    await s.close();
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new Error(`cannot listen on ${config.host}:${config.port}: ${why}${err.code ? ` (${err.code})` : ''}`);
  }
  if (cluster.isWorker) log.info({ pid: process.pid }, 'worker listening');
  else listening(config, log);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => server.closeAllConnections(), GRACE_MS);
    force.unref();
    server.close(() => {
      // In-flight fills finish (bounded by the grace period) so their bytes are not downloaded twice.
      const grace = new Promise<string>((r) => setTimeout(() => r('grace period over: fills still running were cut short'), GRACE_MS).unref());
      const closed = s.close().then(
        () => 'clean',
        (e: unknown) => `close failed: ${(e as Error).message}`,
      );
      void Promise.race([closed, grace]).then((how) => {
        // The last line: an operator reading the log knows the process ended on purpose, and how.
        log.info({ signal, how, uptimeSeconds: Math.round(process.uptime()) }, 'stevedore stopped');
        log.flush();
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A worker whose primary died (kill -9) must not linger holding the port.
  if (cluster.isWorker) process.on('disconnect', () => stop('primary gone'));
}

/** How cache hits leave this server, for the startup line. */
function hitsPath(sendfile: boolean, tls: boolean): string {
  const unavailable = sendfileUnavailable();
  if (!sendfile) return 'copied (server.sendfile: false)';
  if (tls) return 'copied (TLS)';
  return unavailable ? `copied (${unavailable})` : 'sendfile';
}

/** The startup line (and the warning about open access to upstream credentials), once per server. */
function listening(config: Config, log: ReturnType<typeof createLogger>, workers?: number): void {
  const tls = Boolean(config.tlsCert && config.tlsKey);
  log.info(
    {
      listen: `${tls ? 'https' : 'http'}://${config.host}:${config.port}`,
      data: config.data,
      ...(workers ? { workers } : {}),
      defaultUpstream: config.defaultUpstream,
      upstreams: Object.keys(config.upstreams),
      hits: hitsPath(config.server.sendfile, tls),
    },
    'stevedore listening',
  );
  if (!config.clientAuth) {
    const withCredentials = Object.values(config.upstreams)
      .filter((u) => u.credentials)
      .map((u) => u.name);
    if (withCredentials.length > 0)
      log.warn(
        { upstreams: withCredentials, listen: `${config.host}:${config.port}` },
        'no client authentication (auth:) is configured, yet these upstreams have credentials: anyone who can connect can pull what those credentials can read',
      );
  }
}

/**
 * The cluster primary: prepares the data dir once, forks N workers (the kernel's connections are handed out
 * round-robin), replaces a worker that crashes, answers /metrics for the sum of all workers, and on
 * SIGTERM/SIGINT stops every worker gracefully and exits when they have.
 */
async function primary(config: Config, n: number): Promise<void> {
  const log = createLogger(config.logLevel, undefined, config.logFormat);
  await prepareDataDir(config, log);
  const inherited = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  const extra = NODE_FLAGS.filter((f) => !inherited.some((a) => a.startsWith(f.split('=')[0]!)));
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...extra] });
  const aggregator = new AggregatorRegistry();
  const auth = config.clientAuth;
  const attempts = auth ? new LocalAttempts(auth.maxFailures, auth.failureWindowMs) : undefined;
  let stopping = false;
  const fork = (index: number): Worker => {
    const w = cluster.fork({ ...mallocEnv(), [WORKER_ENV]: String(index) });
    if (attempts) answerAttempts(attempts, w);
    w.on('message', (msg: { type?: string; id?: number }) => {
      if (msg?.type !== METRICS_MSG) return;
      aggregator.clusterMetrics().then(
        (text) => w.isConnected() && w.send({ type: METRICS_MSG, id: msg.id, text, contentType: aggregator.contentType }),
        (e: unknown) => w.isConnected() && w.send({ type: METRICS_MSG, id: msg.id, error: String(e) }),
      );
    });
    let listened = false;
    w.once('listening', () => {
      listened = true;
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      if (!listened) {
        // A worker that never got to listen (address in use, bad TLS files) would fail again: stop with its exit
        // code (it printed the one-line reason) instead of restarting it forever.
        stopping = true;
        for (const o of Object.values(cluster.workers ?? {})) if (o && !o.isDead()) o.process.kill('SIGTERM');
        process.exit(code || 1);
      }
      log.error({ worker: index, code, signal }, 'worker exited: starting another');
      setTimeout(() => !stopping && fork(index), 1_000).unref();
    });
    return w;
  };
  const started = Array.from({ length: n }, (_, i) => fork(i + 1));
  await Promise.all(started.map((w) => new Promise<void>((r) => w.once('listening', () => r()))));
  listening(config, log, n);
  // TLS certificate reload (systemctl reload, kill -HUP): every worker re-reads the files.
  if (config.tlsCert && config.tlsKey)
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGHUP');
    });
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: n }, 'shutting down all workers');
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    let left = alive.length;
    const done = (how = 'clean'): void => {
      // The last line of the whole server (each worker wrote its own).
      log.info({ signal, how, workers: n, uptimeSeconds: Math.round(process.uptime()) }, 'stevedore stopped');
      log.flush();
      process.exit(0);
    };
    if (left === 0) done();
    for (const w of alive) {
      w.once('exit', () => --left === 0 && done());
      w.process.kill('SIGTERM');
    }
    // Workers bound their own shutdown (2 x GRACE_MS); past that, they are killed.
    setTimeout(
      () => {
        for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
        done('workers still running after the grace period were killed');
      },
      2 * GRACE_MS + 5_000,
    ).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

let metricsSeq = 0;
/** In a worker: /metrics for the whole cluster, aggregated by the primary (prom-client's AggregatorRegistry). */
function askPrimaryForMetrics(): Promise<{ contentType: string; text: string }> {
  const id = ++metricsSeq;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      reject(new Error('cluster metrics: no answer from the primary'));
    }, 5_000);
    const onMessage = (msg: { type?: string; id?: number; text?: string; contentType?: string; error?: string }): void => {
      if (msg?.type !== METRICS_MSG || msg.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      if (msg.error !== undefined) reject(new Error(msg.error));
      else resolve({ contentType: msg.contentType!, text: msg.text! });
    };
    process.on('message', onMessage);
    process.send!({ type: METRICS_MSG, id });
  });
}
