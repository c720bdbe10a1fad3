// Bench stage 7: the same cold and warm figures through node tier -> haproxy (shipped config) -> 3 site replicas, beside direct.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startHaproxy, type Haproxy } from '../test/helpers/haproxy.ts';
import type { PushedImage } from '../test/helpers/images.ts';
import { pacedRelay } from '../test/helpers/paced-relay.ts';
import type { Registry } from '../test/helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../test/helpers/stevedore.ts';
import { request } from 'undici';
import { settledGets } from './cold.ts';
import { download } from './http.ts';
import { maxSeries, minSeries, type Series } from './report.ts';

const REPLICAS = 3;
const COLD_RUNS = 2;
const WARM_RUNS = 3;
const LINK_BYTES_PER_SEC = 100e6;
const BALANCE_DIGESTS = 3000;

export interface TiersResult {
  replicas: number;
  blobBytes: number;
  /** Cold, loopback: straight from the registry vs node tier -> haproxy -> replica, all tiers empty. */
  cold: { runsEach: number; ms: { direct: Series; tiers: Series }; ratio: number; originGetsPerPull: number[] };
  /** Cold with the origin behind a paced link (site <-> registry), node <-> site on loopback. */
  link: { bytesPerSec: number; ms: { direct: number; tiers: number }; ratio: number; originGets: number };
  /** Warm MB/s: where the bytes come from, cheapest first. */
  warm: { runsEach: number; mbps: { nodeHit: Series; siteHitViaNode: Series; viaHaproxy: Series; replicaDirect: Series } };
  /** Share of random blob digests each replica gets from the shipped haproxy.cfg (1/replicas is perfect balance). */
  balance: { digests: number; shares: number[] };
}

interface Stack {
  replicas: StevedoreProcess[];
  lb: Haproxy;
  node: StevedoreProcess;
  /** Another empty node tier in front of the same site tier. */
  freshNode(): Promise<StevedoreProcess>;
  stop(): Promise<void>;
}

/** Three empty replicas of `origin`, haproxy with the shipped config in front, an empty node tier chained to it. */
async function stack(origin: string): Promise<Stack> {
  const name = new URL(origin).host;
  const quiet = ['--log-level', 'warn'];
  const replicas = await Promise.all(Array.from({ length: REPLICAS }, () => startStevedore({ upstreams: [origin], extraArgs: quiet })));
  const lb = await startHaproxy(replicas.map((r) => r.host));
  const nodes: StevedoreProcess[] = [];
  const freshNode = async (): Promise<StevedoreProcess> => {
    const upstreams = { [name]: { endpoints: [{ url: lb.url, mirror: true }, { url: origin }] } };
    const n = await startStevedore({ config: { builtinUpstreams: false, defaultUpstream: name, upstreams }, extraArgs: quiet });
    nodes.push(n);
    return n;
  };
  const node = await freshNode();
  return {
    replicas,
    lb,
    node,
    freshNode,
    async stop() {
      await Promise.allSettled([...nodes.map((n) => n.stop()), lb.stop(), ...replicas.map((r) => r.stop())]);
    },
  };
}

export async function tiers(registry: Registry, img: PushedImage): Promise<TiersResult> {
  const layer = img.layers[0]!;
  const blob = `/v2/${img.repo}/blobs/${layer.digest}`;
  const expectBytes = layer.size;
  const originGets = (): Promise<number> => settledGets(registry, layer.digest, 300);

  const direct: number[] = [];
  const through: number[] = [];
  const gets: number[] = [];
  const warm = { nodeHit: [] as number[], siteHitViaNode: [] as number[], viaHaproxy: [] as number[], replicaDirect: [] as number[] };
  for (let i = 0; i < COLD_RUNS; i++) {
    direct.push((await download(`${registry.url}${blob}`, { expectBytes })).ms);
    const s = await stack(registry.url);
    try {
      registry.clearRequests();
      const first = await download(`${s.node.url}${blob}`, { expectBytes, hash: i === 0 });
      if (i === 0 && first.sha256 !== layer.digest) throw new Error(`tiers served ${first.sha256}, expected ${layer.digest}`);
      through.push(first.ms);
      gets.push(await originGets());
      if (i > 0) continue;
      // Warm figures on the first stack: node hit, site hit through haproxy, the holding replica straight.
      const holder = await waitForHolder(s.replicas, layer.digest);
      const ns = `?ns=${encodeURIComponent(new URL(registry.url).host)}`;
      for (let j = 0; j < WARM_RUNS; j++) {
        warm.nodeHit.push((await download(`${s.node.url}${blob}`, { expectBytes })).mbps);
        warm.viaHaproxy.push((await download(`${s.lb.url}${blob}${ns}`, { expectBytes })).mbps);
        warm.replicaDirect.push((await download(`${holder.url}${blob}${ns}`, { expectBytes })).mbps);
      }
      for (let j = 0; j < COLD_RUNS; j++) {
        const n = await s.freshNode();
        warm.siteHitViaNode.push((await download(`${n.url}${blob}`, { expectBytes })).mbps);
        await n.stop();
      }
    } finally {
      await s.stop();
    }
  }

  // The origin behind a 100 MB/s link: what the chain adds beyond the link.
  const relay = await pacedRelay(Number(new URL(registry.url).port), LINK_BYTES_PER_SEC);
  let link: TiersResult['link'];
  try {
    const d = (await download(`${relay.url}${blob}`, { expectBytes })).ms;
    const s = await stack(relay.url);
    try {
      registry.clearRequests();
      const t = (await download(`${s.node.url}${blob}`, { expectBytes })).ms;
      link = { bytesPerSec: LINK_BYTES_PER_SEC, ms: { direct: d, tiers: t }, ratio: t / d, originGets: await originGets() };
    } finally {
      await s.stop();
    }
  } finally {
    await relay.close();
  }
  const ms = { direct: minSeries(direct), tiers: minSeries(through) };
  const shares = await balance(BALANCE_DIGESTS);
  return {
    balance: { digests: BALANCE_DIGESTS, shares },
    replicas: REPLICAS,
    blobBytes: expectBytes,
    cold: { runsEach: COLD_RUNS, ms, ratio: ms.tiers.median / ms.direct.median, originGetsPerPull: gets },
    link,
    warm: {
      runsEach: WARM_RUNS,
      mbps: {
        nodeHit: maxSeries(warm.nodeHit),
        siteHitViaNode: maxSeries(warm.siteHitViaNode),
        viaHaproxy: maxSeries(warm.viaHaproxy),
        replicaDirect: maxSeries(warm.replicaDirect),
      },
    },
  };
}

/** haproxy (shipped config) in front of counting stand-ins for the replicas: which share of random digests each gets. */
async function balance(digests: number): Promise<number[]> {
  const counts = Array.from({ length: REPLICAS }, () => 0);
  const servers: Server[] = counts.map((_, i) =>
    createServer((req, res) => {
      if (req.url?.includes('/blobs/')) counts[i]!++;
      res.writeHead(req.url === '/v2/' || req.url === '/readyz' ? 200 : 404, { 'content-length': '0' }).end();
    }),
  );
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const lb = await startHaproxy(servers.map((s) => `127.0.0.1:${(s.address() as AddressInfo).port}`));
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < digests) {
        next++;
        const res = await request(`${lb.url}/v2/r/blobs/sha256:${randomBytes(32).toString('hex')}`, { method: 'HEAD' });
        await res.body.dump();
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    await lb.stop();
    for (const s of servers) s.close();
  }
  return counts.map((c) => c / digests);
}

/** The replica whose store holds the digest (it commits just after verifying). */
async function waitForHolder(replicas: StevedoreProcess[], digest: string): Promise<StevedoreProcess> {
  for (let i = 0; i < 100; i++) {
    const r = replicas.find((x) => existsSync(path.join(x.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7))));
    if (r) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`no replica committed ${digest}`);
}

export function printTiers(t: TiersResult, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const runs = (s: Series): string => `${f(s.median)}  (${s.runs.map((x) => f(x)).join(', ')})`;
  const mib = (t.blobBytes / 1024 / 1024).toFixed(0);
  out(`7. tiers: node stevedore -> haproxy (deploy/haproxy/haproxy.cfg) -> ${t.replicas} replicas, ${mib} MiB blob`);
  out(`   cold, ms (median; runs): registry direct ${runs(t.cold.ms.direct)}`);
  out(`                            through the tiers ${runs(t.cold.ms.tiers)}  = ${f(t.cold.ratio, 2)}x direct`);
  out(`   origin GETs per cold pull through the tiers: ${t.cold.originGetsPerPull.join(', ')} (expected 1 each)`);
  out(
    `   cold over a ${f(t.link.bytesPerSec / 1e6)} MB/s origin link, ms: direct ${f(t.link.ms.direct)}, tiers ${f(t.link.ms.tiers)} = ${f(t.link.ratio, 2)}x (origin GETs ${t.link.originGets})`,
  );
  const w = t.warm.mbps;
  out(`   warm, MB/s (median; runs): node-tier hit ${runs(w.nodeHit)}`);
  out(`                              site hit via a fresh node tier ${runs(w.siteHitViaNode)}`);
  out(`                              replica hit via haproxy ${runs(w.viaHaproxy)}`);
  out(`                              replica hit direct ${runs(w.replicaDirect)}`);
  out(`   blob share per replica over ${t.balance.digests} random digests: ${t.balance.shares.map((x) => `${f(x * 100, 1)} %`).join(' / ')}`);
}

/** `node --import tsx bench/tiers.ts`: this stage alone (registry + a 512 MiB layer), after `npm run build`. */
async function standalone(): Promise<void> {
  const { startRegistry } = await import('../test/helpers/registry.ts');
  const { cleanupLayerFiles, pushBigLayer } = await import('../test/helpers/images.ts');
  const { closeDownloads } = await import('./http.ts');
  const registry = await startRegistry();
  try {
    const big = await pushBigLayer(registry.url, 'bench/big', 'v1', 512, { seed: 512 });
    printTiers(await tiers(registry, big));
  } finally {
    await closeDownloads();
    await registry.destroy();
    await cleanupLayerFiles();
  }
}
if (process.argv[1] && import.meta.filename === path.resolve(process.argv[1])) {
  standalone().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`bench tiers failed: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
