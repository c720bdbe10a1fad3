// Bench stage 2: cold pulls of the big blob with curl, straight from the upstream, through a fresh stevedore
// and through a fresh peer (distribution proxy), on loopback and over paced links (100 MB/s, 1 Gbit/s = 125 MB/s).
// Each fresh server first pulls another blob (`warmup`): a cache is a long-running process, so a cold pull meets
// a warm JIT; what is cold is the blob.
import type { PushedImage } from '../test/helpers/images.ts';
import { pacedRelay } from '../test/helpers/paced-relay.ts';
import type { Registry } from '../test/helpers/registry.ts';
import { curlDownload } from './http.ts';
import { startPeer } from './peer.ts';
import { minSeries, type Series } from './report.ts';
import { startStevedore, type Server } from './servers.ts';

export interface ColdResult {
  /** undefined: loopback */
  bytesPerSec: number | undefined;
  runsEach: number;
  ms: { direct: Series; stevedore: Series; peer: Series };
  /** median time / median direct time (lower is better; 1.0 = as fast as straight from the upstream) */
  ratio: { stevedore: number; peer: number };
}

type Started = <S extends Server>(p: Promise<S>) => Promise<S>;

async function coldRuns(
  upstreamUrl: string,
  img: PushedImage,
  warmup: PushedImage,
  runs: number,
  workers: number,
  started: Started,
): Promise<Omit<ColdResult, 'bytesPerSec'>> {
  const blob = `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;
  const expectBytes = img.layers[0]!.size;
  const ms = (mbps: number): number => (expectBytes / 1e6 / mbps) * 1000;
  const got = { direct: [] as number[], stevedore: [] as number[], peer: [] as number[] };
  for (let i = 0; i < runs; i++) {
    got.direct.push(ms(await curlDownload(`${upstreamUrl}${blob}`, expectBytes)));
    for (const who of ['stevedore', 'peer'] as const) {
      const s = await started(who === 'stevedore' ? startStevedore(upstreamUrl, { workers }) : startPeer(upstreamUrl));
      try {
        await curlDownload(`${s.url}/v2/${warmup.repo}/blobs/${warmup.layers[0]!.digest}`, warmup.layers[0]!.size);
        got[who].push(ms(await curlDownload(`${s.url}${blob}`, expectBytes)));
      } finally {
        await s.stop(); // also removes its fresh data dir
      }
    }
  }
  const out = { direct: minSeries(got.direct), stevedore: minSeries(got.stevedore), peer: minSeries(got.peer) };
  return { runsEach: runs, ms: out, ratio: { stevedore: out.stevedore.median / out.direct.median, peer: out.peer.median / out.direct.median } };
}

export async function coldLoopback(
  registry: Registry,
  img: PushedImage,
  warmup: PushedImage,
  runs: number,
  workers: number,
  started: Started,
): Promise<ColdResult> {
  return { bytesPerSec: undefined, ...(await coldRuns(registry.url, img, warmup, runs, workers, started)) };
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
    return { bytesPerSec, ...(await coldRuns(relay.url, img, warmup, runs, workers, started)) };
  } finally {
    await relay.close();
  }
}
