// `npm run bench`: real upstream registry + nginx + stevedore on 127.0.0.1; warm/cold throughput, coalescing, manifest req/s, RSS, 1,000 connections.
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { cleanupLayerFiles, MT, pushBigLayer, type PushedImage } from '../test/helpers/images.ts';
import { startRegistry, type Registry } from '../test/helpers/registry.ts';
import { makeTempDir, runCommand, sleep } from '../test/helpers/tmp.ts';
import { closeDownloads, curlDownload, download, type Download } from './http.ts';
import { loadTest } from './loadgen.ts';
import { coldOverLink } from './link.ts';
import { manyConnections } from './many.ts';
import { maxSeries, minSeries, printTable, TARGETS, writeJson, type Results } from './report.ts';
import { procCpuMs, procStatusBytes, sampleRss, startNginx, startStevedore, type Server } from './servers.ts';
import { printTiers, tiers, type TiersResult } from './tiers.ts';

const BIG_MIB = 512;
const SMALL_MIB = 64;
const WARM_RUNS = 5;
const CURL_RUNS = 3;
const COLD_RUNS = 3;
const COALESCE_CLIENTS = 20;
const RSS_CLIENTS = 10;
const LOAD_MS = 5_000;
const LOAD_CONNECTIONS = 64;
/** the whole run must stay under 5 minutes; past this, stop everything and fail */
const BUDGET_MS = 285_000;
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
    return await fn();
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

async function warm(
  registry: Registry,
  nginx: Server,
  big: PushedImage,
  dataDir: string,
): Promise<Results['warm'] & { stevedore: Server & { dataDir: string } }> {
  const layer = big.layers[0]!;
  const expectBytes = layer.size;
  const sd = await started(startStevedore(registry.url, { dataDir, tagTtl: 3600 }));
  // Pull once (fills the cache), then once from the cache, both hashed: the bytes stevedore serves are the blob.
  const first = await download(`${sd.url}${blobPath(big)}`, { hash: true, expectBytes });
  const again = await download(`${sd.url}${blobPath(big)}`, { hash: true, expectBytes });
  const sha256Verified = first.sha256 === layer.digest && again.sha256 === layer.digest;
  const urls = {
    nginx: `${nginx.url}/${path.basename(layer.path!)}`,
    upstream: `${registry.url}${blobPath(big)}`,
    stevedore: `${sd.url}${blobPath(big)}`,
  };
  type Who = keyof typeof urls;
  const order = Object.keys(urls) as Who[];
  // One unmeasured pass each: JIT-warm the client, fault the files into the page cache.
  for (const who of order) await download(urls[who], { expectBytes });
  const runs: Record<Who, number[]> = { nginx: [], upstream: [], stevedore: [] };
  const cpu = { stevedore: [] as number[], nginx: [] as number[] };
  for (let i = 0; i < WARM_RUNS; i++) {
    // rotate who goes first, so no one always runs right after the same neighbour
    for (let j = 0; j < order.length; j++) {
      const who = order[(i + j) % order.length]!;
      const pid = who === 'stevedore' ? sd.pid : who === 'nginx' ? nginx.pid : undefined;
      const c0 = pid ? procCpuMs(pid) : NaN;
      runs[who].push((await download(urls[who], { expectBytes })).mbps);
      if (pid) cpu[who as 'stevedore' | 'nginx'].push(procCpuMs(pid) - c0);
    }
  }
  const curl: Record<Who, number[]> = { nginx: [], upstream: [], stevedore: [] };
  let haveCurl = true;
  for (let i = 0; i < CURL_RUNS && haveCurl; i++) {
    for (let j = 0; j < order.length && haveCurl; j++) {
      const who = order[(i + j) % order.length]!;
      const v = await curlDownload(urls[who], expectBytes);
      if (v === undefined) haveCurl = false;
      else curl[who].push(v);
    }
  }
  const mbps = { nginx: maxSeries(runs.nginx), upstream: maxSeries(runs.upstream), stevedore: maxSeries(runs.stevedore) };
  const curlMBps = haveCurl ? { nginx: maxSeries(curl.nginx), upstream: maxSeries(curl.upstream), stevedore: maxSeries(curl.stevedore) } : undefined;
  const ratioVsNginx = mbps.stevedore.median / mbps.nginx.median;
  const curlRatioVsNginx = curlMBps ? curlMBps.stevedore.median / curlMBps.nginx.median : NaN;
  return {
    runsEach: WARM_RUNS,
    curlRunsEach: haveCurl ? CURL_RUNS : 0,
    sha256Verified,
    mbps,
    curlMBps,
    ratioVsNginx,
    curlRatioVsNginx,
    ratioVsUpstream: mbps.stevedore.median / mbps.upstream.median,
    stevedoreCpuMs: minSeries(cpu.stevedore),
    nginxCpuMs: minSeries(cpu.nginx),
    pass: ratioVsNginx >= TARGETS.warmVsNginx && sha256Verified,
    passCurl: curlMBps ? curlRatioVsNginx >= TARGETS.warmVsNginx : undefined,
    stevedore: sd,
  };
}

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
  const base = { connections: LOAD_CONNECTIONS, durationMs: LOAD_MS, headers: { accept: ACCEPT } };
  const getByDigest = await loadTest(sd.url, byDigest, { ...base, method: 'GET' });
  const headByTag = await loadTest(sd.url, byTag, { ...base, method: 'HEAD' });
  return { getByDigest, headByTag, outcomes };
}

async function rss(registry: Registry, big: PushedImage, dataDir: string): Promise<Results['rss']> {
  // A fresh process on the warm data dir, so VmHWM covers only startup + this test.
  const sd = await started(startStevedore(registry.url, { dataDir }));
  const url = `${sd.url}${blobPath(big)}`;
  await download(`${sd.url}/v2/`);
  await sleep(200);
  const idleRssBytes = procStatusBytes(sd.pid, 'VmRSS') ?? NaN;
  const sampler = sampleRss(sd.pid, 50);
  const start = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: RSS_CLIENTS }, () => download(url, { expectBytes: big.layers[0]!.size })));
  const sampled = await sampler.stop();
  const failed = settled.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason;
  const results = settled.map((x) => (x as PromiseFulfilledResult<Download>).value);
  const secs = (performance.now() - start) / 1000;
  const vmHwmBytes = procStatusBytes(sd.pid, 'VmHWM') ?? NaN;
  await sd.stop();
  const aggregateMBps = results.reduce((a, r) => a + r.bytes, 0) / 1e6 / secs;
  // VmHWM is the kernel's exact peak (since this restart); the samples show it came from the downloads.
  const pass = Math.max(sampled.peak, Number.isNaN(vmHwmBytes) ? 0 : vmHwmBytes) <= TARGETS.rssBytes;
  return { clients: RSS_CLIENTS, idleRssBytes, peakRssBytes: sampled.peak, vmHwmBytes, samples: sampled.samples, aggregateMBps, pass };
}

async function cold(registry: Registry, big: PushedImage): Promise<Results['cold']> {
  const expectBytes = big.layers[0]!.size;
  const direct: number[] = [];
  const through: Download[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    direct.push((await download(`${registry.url}${blobPath(big)}`, { expectBytes })).ms);
    const sd = await started(startStevedore(registry.url));
    try {
      const c0 = procCpuMs(sd.pid);
      through.push(await download(`${sd.url}${blobPath(big)}`, { expectBytes }));
      cpu.push(procCpuMs(sd.pid) - c0);
    } finally {
      await sd.stop(); // also removes its fresh data dir
    }
  }
  const ms = { stevedore: minSeries(through.map((d) => d.ms)), direct: minSeries(direct) };
  const ratio = ms.stevedore.median / ms.direct.median;
  return {
    runsEach: COLD_RUNS,
    ms,
    ratio,
    pass: ratio <= TARGETS.coldVsDirect,
    stevedoreHeadersMs: minSeries(through.map((d) => d.headersMs)),
    stevedoreAllButLastMs: minSeries(through.map((d) => d.allButLastMs)),
    stevedoreCpuMs: minSeries(cpu),
  };
}

async function coalescing(registry: Registry, small: PushedImage): Promise<Results['coalescing']> {
  const layer = small.layers[0]!;
  const sd = await started(startStevedore(registry.url));
  try {
    registry.clearRequests();
    const url = `${sd.url}${blobPath(small)}`;
    const got = await Promise.all(Array.from({ length: COALESCE_CLIENTS }, (_, i) => download(url, { expectBytes: layer.size, hash: i === 0 })));
    if (got[0]!.sha256 !== layer.digest) throw new Error(`coalesced body hashes to ${got[0]!.sha256}, expected ${layer.digest}`);
    // The registry logs a request just after answering it: wait for the GET, then a little for stragglers.
    const isGet = (r: { method: string; uri: string }): boolean => r.method === 'GET' && r.uri.includes(layer.digest);
    await registry.waitForRequest(isGet, 5_000);
    await sleep(500);
    const reqs = registry.requests().filter((r) => r.uri.includes(layer.digest));
    const upstreamGets = reqs.filter(isGet).length;
    const upstreamHeads = reqs.filter((r) => r.method === 'HEAD').length;
    const upstreamBytes = upstreamGets * layer.size;
    const ratio = upstreamBytes / layer.size;
    return {
      clients: COALESCE_CLIENTS,
      blobBytes: layer.size,
      upstreamGets,
      upstreamHeads,
      upstreamBytes,
      ratio,
      clientMs: minSeries(got.map((g) => g.ms)),
      pass: ratio.toFixed(2) === TARGETS.coalescingRatio.toFixed(2),
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
    const big = await stage(`build + push ${BIG_MIB} MiB layer`, () => pushBigLayer(registry.url, 'bench/big', 'v1', BIG_MIB, { seed: 512 }));
    const small = await stage(`build + push ${SMALL_MIB} MiB layer`, () => pushBigLayer(registry.url, 'bench/coalesce', 'v1', SMALL_MIB, { seed: 64 }));
    // The builds and pushes left ~1.5 GB of dirty pages; write them back now, not during the measurements.
    await stage('sync', () => runCommand('sync', [], { timeoutMs: 60_000 }));
    const nginx = await stage('start nginx', () => started(startNginx(path.dirname(big.layers[0]!.path!))));
    const warmDir = makeTempDir('stevedore-bench-warm-');
    onCleanup(() => warmDir.cleanup());
    const w = await stage('1. warm throughput', () => warm(registry, nginx, big, warmDir.path));
    const { stevedore: warmServer, ...warmResult } = w;
    const m = await stage('4. manifest load', () => manifests(warmServer, big));
    const many = await stage('6. 1,000 connections', () => manyConnections(warmServer, big, ACCEPT));
    await warmServer.stop();
    await nginx.stop();
    const r = await stage('5. RSS under 10 warm downloads', () => rss(registry, big, warmDir.path));
    await warmDir.cleanup();
    const c = await stage('2. cold pull', () => cold(registry, big));
    const link = await stage('2b. cold pull over a 100 MB/s link', () => coldOverLink(registry, big, started, TARGETS.coldVsDirect));
    const k = await stage('3. coalescing', () => coalescing(registry, small));
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
      warm: warmResult,
      cold: c,
      link,
      coalescing: k,
      manifests: m,
      rss: r,
      many,
      tiers: t,
    };
    printTable(results);
    printTiers(t);
    writeJson(RESULTS, results);
    log(`wrote ${path.relative(process.cwd(), RESULTS)}`);
  } finally {
    clearTimeout(watchdog);
    await closeDownloads();
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
