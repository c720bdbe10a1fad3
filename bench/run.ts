// `npm run bench`: real upstream registry, the peer (distribution proxy), nginx and stevedore on 127.0.0.1; curl and
// undici clients; warm/cold throughput side by side, paced links, coalescing across workers, manifest p99, RSS.
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { cleanupLayerFiles, MT, pushBigLayer, type PushedImage } from '../test/helpers/images.ts';
import { startRegistry, type Registry } from '../test/helpers/registry.ts';
import { makeTempDir, runCommand, sleep } from '../test/helpers/tmp.ts';
import { coldLoopback, coldOverLink } from './cold.ts';
import { closeDownloads, download, type Download } from './http.ts';
import { loadTest } from './loadgen.ts';
import { manyConnections } from './many.ts';
import { closeProbes } from './probe.ts';
import { printTable, writeJson, type Coalescing, type Results } from './report.ts';
import { procStatusBytes, sampleRss, startNginx, startStevedore, type Server } from './servers.ts';
import { verifyCost } from './verify-cost.ts';
import { warm } from './warm.ts';
import { printTiers, tiers, type TiersResult } from './tiers.ts';

/** 256 MiB keeps the whole run inside the budget on a busy 2-core machine; BENCH_MIB=512 for the size. */
const BIG_MIB = Number(process.env.BENCH_MIB ?? 256);
const SMALL_MIB = 64;
const COLD_RUNS = 3;
const LINKS: [bytesPerSec: number, runs: number][] = [
  [100e6, 1],
  [125e6, 1],
];
const COALESCE_CLIENTS = 20;
const RSS_CLIENTS = 10;
const LOAD_MS = 4_000;
const LOAD_WARMUP_MS = 3_000;
const LOAD_CONNECTIONS = 50;
/** what `serve` uses by default: one worker per CPU */
const WORKERS = os.availableParallelism();
/** the whole run must stay under 5 minutes; past this, stop everything and fail */
const BUDGET_MS = 295_000;
const RESULTS = path.resolve(import.meta.dirname, 'results.json');
const ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');

const t0 = performance.now();
const loadAtStart = os.loadavg()[0]!;
const stageSeconds: Record<string, number> = {};
const log = (msg: string): void => void process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}\n`);
async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const s = performance.now();
  log(`${name} ...`);
  try {
    const out = await fn();
    // Each stage's numbers as soon as they exist: a run cut short by the budget still shows what it measured.
    if (/^\d/.test(name))
      log(`${name}: ${JSON.stringify(out, (k, v) => (k === 'stevedore' && v?.url ? undefined : typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
    return out;
  } finally {
    stageSeconds[name] = (performance.now() - s) / 1000;
  }
}

/** Async cleanups, run newest first, each at most once, even when a stage throws. */
const cleanups: (() => Promise<void>)[] = [];
function onCleanup(fn: () => Promise<void>): void {
  let done = false;
  cleanups.push(async () => {
    if (done) return;
    done = true;
    await fn();
  });
}
async function runCleanups(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!().catch((e: unknown) => log(`cleanup: ${String(e)}`));
}
/** Start a server and register its stop; returns it plus a stop that can be called early. */
async function started<S extends Server>(p: Promise<S>): Promise<S> {
  const s = await p;
  const stop = s.stop;
  let stopped: Promise<void> | undefined;
  s.stop = () => (stopped ??= stop());
  onCleanup(() => s.stop());
  return s;
}

const blobPath = (img: PushedImage): string => `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;

/** One request with undici; returns stevedore's X-Stevedore-Cache outcome after checking status and digest. */
async function cacheOutcome(url: string, method: 'GET' | 'HEAD', digest: string): Promise<string> {
  const res = await request(url, { method, headers: { accept: ACCEPT } });
  await res.body.dump();
  if (res.statusCode !== 200 || res.headers['docker-content-digest'] !== digest) {
    throw new Error(`${method} ${url}: ${res.statusCode}, digest ${String(res.headers['docker-content-digest'])}`);
  }
  return String(res.headers['x-stevedore-cache']);
}

async function manifests(sd: Server, big: PushedImage): Promise<Results['manifests']> {
  const byDigest = `/v2/${big.repo}/manifests/${big.manifestDigest}`;
  const byTag = `/v2/${big.repo}/manifests/v1`;
  // Prime: the tag (stored because the Accept list includes index types) and the digest; then both must hit.
  await cacheOutcome(`${sd.url}${byTag}`, 'GET', big.manifestDigest);
  await cacheOutcome(`${sd.url}${byDigest}`, 'GET', big.manifestDigest);
  const outcomes = {
    getByDigest: await cacheOutcome(`${sd.url}${byDigest}`, 'GET', big.manifestDigest),
    headByTag: await cacheOutcome(`${sd.url}${byTag}`, 'HEAD', big.manifestDigest),
  };
  // Steady state: the server's first seconds on a code path are JIT compilation competing for the same two cores
  // (measured: p99 100-450 ms in the first 2 s of a fresh process, 20-40 ms after 6 s), a one-time cost per start.
  const base = { connections: LOAD_CONNECTIONS, durationMs: LOAD_MS, warmupMs: LOAD_WARMUP_MS, headers: { accept: ACCEPT } };
  const getByDigest = await loadTest(sd.url, byDigest, { ...base, method: 'GET' });
  const headByTag = await loadTest(sd.url, byTag, { ...base, method: 'HEAD' });
  return { getByDigest, headByTag, outcomes };
}

async function rss(registry: Registry, big: PushedImage, dataDir: string): Promise<Results['rss']> {
  // A fresh single-process server on the warm data dir, so VmHWM covers only startup + this test.
  const sd = await started(startStevedore(registry.url, { dataDir, workers: 1 }));
  const url = `${sd.url}${blobPath(big)}`;
  await download(`${sd.url}/v2/`);
  await sleep(200);
  const idleBeforeBytes = procStatusBytes(sd.pid, 'VmRSS') ?? NaN;
  const sampler = sampleRss(sd.pid, 50);
  const start = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: RSS_CLIENTS }, () => download(url, { expectBytes: big.layers[0]!.size })));
  const sampled = await sampler.stop();
  const failed = settled.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason;
  const results = settled.map((x) => (x as PromiseFulfilledResult<Download>).value);
  const secs = (performance.now() - start) / 1000;
  const vmHwmBytes = procStatusBytes(sd.pid, 'VmHWM') ?? NaN;
  await sleep(2_000);
  const idleAfterBytes = procStatusBytes(sd.pid, 'VmRSS') ?? NaN;
  await sd.stop();
  const aggregateMBps = results.reduce((a, r) => a + r.bytes, 0) / 1e6 / secs;
  return { clients: RSS_CLIENTS, idleBeforeBytes, peakRssBytes: sampled.peak, vmHwmBytes, idleAfterBytes, samples: sampled.samples, aggregateMBps };
}

async function coalescing(registry: Registry, small: PushedImage, workers: number): Promise<Coalescing> {
  const layer = small.layers[0]!;
  const sd = await started(startStevedore(registry.url, { workers }));
  try {
    registry.clearRequests();
    const url = `${sd.url}${blobPath(small)}`;
    const got = await Promise.all(Array.from({ length: COALESCE_CLIENTS }, () => download(url, { expectBytes: layer.size, hash: true })));
    const bytesExact = got.every((g) => g.sha256 === layer.digest);
    // The registry logs a request just after answering it: wait for the GET, then a little for stragglers.
    const isGet = (r: { method: string; uri: string }): boolean => r.method === 'GET' && r.uri.includes(layer.digest);
    await registry.waitForRequest(isGet, 5_000);
    await sleep(500);
    const reqs = registry.requests().filter((r) => r.uri.includes(layer.digest));
    const upstreamGets = reqs.filter(isGet).length;
    const upstreamHeads = reqs.filter((r) => r.method === 'HEAD').length;
    return {
      workers,
      clients: COALESCE_CLIENTS,
      blobBytes: layer.size,
      upstreamGets,
      upstreamHeads,
      ratio: upstreamGets,
      bytesExact,
      pass: upstreamGets === 1 && bytesExact,
    };
  } finally {
    await sd.stop();
  }
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    log(`over the ${BUDGET_MS / 1000} s budget: giving up (children are killed, temp dirs removed at exit)`);
    process.exit(1);
  }, BUDGET_MS);
  watchdog.unref();
  if (loadAtStart > 0.5) log(`warning: 1-minute load average is ${loadAtStart.toFixed(2)} on ${os.cpus().length} cpus; other work will skew the numbers`);
  try {
    const registry = await stage('start registry', () => startRegistry());
    onCleanup(() => registry.destroy());
    onCleanup(() => cleanupLayerFiles());
    const big = await stage(`build + push ${BIG_MIB} MiB layer`, () => pushBigLayer(registry.url, 'bench/big', 'v1', BIG_MIB, { seed: BIG_MIB }));
    const small = await stage(`build + push ${SMALL_MIB} MiB layer`, () => pushBigLayer(registry.url, 'bench/coalesce', 'v1', SMALL_MIB, { seed: 64 }));
    // The builds and pushes left ~1.5 GB of dirty pages; write them back now, not during the measurements.
    await stage('sync', () => runCommand('sync', [], { timeoutMs: 60_000 }));
    const nginx = await stage('start nginx', () => started(startNginx(path.dirname(big.layers[0]!.path!))));
    const warmDir = makeTempDir('stevedore-bench-warm-');
    onCleanup(() => warmDir.cleanup());
    const w = await stage('1. warm throughput', () => warm(registry, nginx, big, warmDir.path, WORKERS, started));
    const m = await stage('4. manifest load', () => manifests(w.stevedore, big));
    const v = await stage('8. verify-on-serve cost', () => verifyCost(big.layers[0]!.path!));
    const many = await stage('6. 1,000 connections', () => manyConnections(w.stevedore, big, ACCEPT));
    await w.stevedore.stop();
    await nginx.stop();
    const r = await stage('5. RSS under 10 warm downloads', () => rss(registry, big, warmDir.path));
    await warmDir.cleanup();
    const cold = [await stage('2. cold pull, loopback', () => coldLoopback(registry, big, small, COLD_RUNS, WORKERS, started))];
    for (const [rate, runs] of LINKS)
      cold.push(await stage(`2b. cold pull over ${rate / 1e6} MB/s`, () => coldOverLink(registry, big, small, rate, runs, WORKERS, started)));
    const k = [await stage('3. coalescing, 1 worker', () => coalescing(registry, small, 1))];
    k.push(await stage(`3. coalescing, ${WORKERS} workers`, () => coalescing(registry, small, WORKERS)));
    // Further stages are called here: each returns its part of Results and prints its own table.
    const t = await stage('7. tiers: node -> haproxy -> 3 replicas', () => tiers(registry, big));
    const results: Results & { tiers: TiersResult } = {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpus: os.cpus().length,
        platform: `${os.platform()} ${os.release()}`,
        blobBytes: big.layers[0]!.size,
        coalesceBlobBytes: small.layers[0]!.size,
        totalSeconds: (performance.now() - t0) / 1000,
        stageSeconds,
        loadavg1: { start: loadAtStart, end: os.loadavg()[0]! },
      },
      warm: w.result,
      cold,
      coalescing: k,
      manifests: m,
      rss: r,
      many,
      verifyCost: v,
      tiers: t,
    };
    printTable(results);
    printTiers(t);
    writeJson(RESULTS, results);
    log(`wrote ${path.relative(process.cwd(), RESULTS)}`);
  } finally {
    clearTimeout(watchdog);
    await closeDownloads();
    await closeProbes();
    await runCleanups();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
