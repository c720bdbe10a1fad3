// Bench stage 2: cold pulls of the big blob with curl, straight from the upstream, through a fresh stevedore
// and through a fresh peer (distribution proxy), on loopback and over paced links (100 MB/s, 1 Gbit/s = 125 MB/s).
// Each fresh server first pulls another blob (`warmup`): a cache is a long-running process, so a cold pull meets
// a warm JIT; what is cold is the blob.
import path from 'node:path';
import { MT, type PushedImage } from '../test/helpers/images.ts';
import { pacedRelay } from '../test/helpers/paced-relay.ts';
import type { Registry } from '../test/helpers/registry.ts';
import { makeTempDir, runCommand, sleep } from '../test/helpers/tmp.ts';
import { curlDownload } from './http.ts';
import { startPeer } from './peer.ts';
import { probeWhile, type ProbeLatency } from './probe.ts';
import { minSeries, type Series } from './report.ts';
import { startStevedore, type Server } from './servers.ts';

export interface ColdResult {
  /** undefined: loopback */
  bytesPerSec: number | undefined;
  runsEach: number;
  ms: { direct: Series; stevedore: Series; peer: Series };
  /** median time / median direct time (lower is better; 1.0 = as fast as straight from the upstream) */
  ratio: { stevedore: number; peer: number };
  /**
   * Writing a new file of the blob's size (dd from /dev/zero into the temp dir), the same runs: every cold fill
   * writes the blob to a new file, and on a VM whose fresh pages the host backs lazily that alone costs far more
   * than on bare metal. The peer's client path writes nothing (it stores the blob with a second download).
   */
  newFileMs: Series;
  /** GETs of the blob the upstream answered per cold pull (the peer downloads it a second time to store it) */
  upstreamGets: { stevedore: number[]; peer: number[] };
  /** A cached manifest GET by digest every 10 ms during one more pull (loopback only): does a fill hold up other clients? */
  manifestDuring: { stevedore: ProbeLatency[]; peer: ProbeLatency[] };
}

const ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');

type Started = <S extends Server>(p: Promise<S>) => Promise<S>;

/**
 * The upstream's count of GETs of `digest`, once it has stayed the same (and above 0) for `stableMs`: its log line
 * is written just after each response, and a peer may still be downloading the blob a second time.
 */
export async function settledGets(registry: Registry, digest: string, stableMs: number): Promise<number> {
  const count = (): number => registry.requests().filter((r) => r.method === 'GET' && r.uri.endsWith(`/blobs/${digest}`)).length;
  let last = count();
  let still = 0;
  for (const until = performance.now() + 10_000; performance.now() < until && still * 100 < stableMs; ) {
    await sleep(100);
    const now = count();
    still = now === last && now > 0 ? still + 1 : 0;
    last = now;
  }
  return last;
}

/** ms to write `bytes` of zeros to a new file in the temp dir (removed after). */
async function writeNewFile(bytes: number): Promise<number> {
  const dir = makeTempDir('stevedore-bench-write-');
  try {
    const t0 = performance.now();
    const mib = Math.ceil(bytes / (1 << 20));
    const r = await runCommand('dd', ['if=/dev/zero', `of=${path.join(dir.path, 'f')}`, 'bs=1M', `count=${mib}`, 'status=none']);
    if (r.code !== 0) throw new Error(`dd: ${r.stderr}`);
    return performance.now() - t0;
  } finally {
    await dir.cleanup();
  }
}

async function coldRuns(
  registry: Registry,
  upstreamUrl: string,
  img: PushedImage,
  warmup: PushedImage,
  runs: number,
  workers: number,
  started: Started,
  /** One more pull each, not timed: a cached manifest is probed meanwhile (the probes' own load stays out of the times). */
  probe: boolean,
): Promise<Omit<ColdResult, 'bytesPerSec'>> {
  const blob = `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;
  const expectBytes = img.layers[0]!.size;
  const ms = (mbps: number): number => (expectBytes / 1e6 / mbps) * 1000;
  const got = { direct: [] as number[], stevedore: [] as number[], peer: [] as number[] };
  const gets = { stevedore: [] as number[], peer: [] as number[] };
  const during = { stevedore: [] as ProbeLatency[], peer: [] as ProbeLatency[] };
  const newFile: number[] = [];
  for (let i = 0; i < runs + (probe ? 1 : 0); i++) {
    const probing = i === runs;
    if (!probing) {
      newFile.push(await writeNewFile(expectBytes));
      got.direct.push(ms(await curlDownload(`${upstreamUrl}${blob}`, expectBytes)));
    }
    for (const who of ['stevedore', 'peer'] as const) {
      const s = await started(who === 'stevedore' ? startStevedore(upstreamUrl, { workers }) : startPeer(upstreamUrl));
      try {
        await curlDownload(`${s.url}/v2/${warmup.repo}/blobs/${warmup.layers[0]!.digest}`, warmup.layers[0]!.size);
        const pull = (): Promise<number> => curlDownload(`${s.url}${blob}`, expectBytes);
        if (probing) {
          during[who].push((await probeWhile(`${s.url}/v2/${warmup.repo}/manifests/${warmup.manifestDigest}`, ACCEPT, pull)).latency);
          continue;
        }
        const before = await settledGets(registry, img.layers[0]!.digest, 500);
        got[who].push(ms(await pull()));
        // Counted before the server stops: the peer's second download (to store the blob) may end well after the pull.
        gets[who].push((await settledGets(registry, img.layers[0]!.digest, 2_500)) - before);
      } finally {
        await s.stop(); // also removes its fresh data dir
      }
    }
  }
  const out = { direct: minSeries(got.direct), stevedore: minSeries(got.stevedore), peer: minSeries(got.peer) };
  const ratio = { stevedore: out.stevedore.median / out.direct.median, peer: out.peer.median / out.direct.median };
  return { runsEach: runs, ms: out, ratio, newFileMs: minSeries(newFile), upstreamGets: gets, manifestDuring: during };
}

export async function coldLoopback(
  registry: Registry,
  img: PushedImage,
  warmup: PushedImage,
  runs: number,
  workers: number,
  started: Started,
): Promise<ColdResult> {
  return { bytesPerSec: undefined, ...(await coldRuns(registry, registry.url, img, warmup, runs, workers, started, true)) };
}

/** A relay in front of the registry paces its answers at `bytesPerSec`, like a link of that bandwidth. */
export async function coldOverLink(
  registry: Registry,
  img: PushedImage,
  warmup: PushedImage,
  bytesPerSec: number,
  runs: number,
  workers: number,
  started: Started,
): Promise<ColdResult> {
  const relay = await pacedRelay(Number(new URL(registry.url).port), bytesPerSec);
  try {
    return { bytesPerSec, ...(await coldRuns(registry, relay.url, img, warmup, runs, workers, started, false)) };
  } finally {
    await relay.close();
  }
}
