// Bench stage 2b: a cold pull over a paced 100 MB/s link (relay in front of the registry), straight from the
// registry vs through stevedore. On loopback the cold ratio measures Node's receive cost; over a real link
// this shows what a user sees: whether stevedore adds time beyond the link itself.
import type { PushedImage } from '../test/helpers/images.ts';
import { pacedRelay } from '../test/helpers/paced-relay.ts';
import type { Registry } from '../test/helpers/registry.ts';
import { download } from './http.ts';
import { minSeries, type Series } from './report.ts';
import { startStevedore, type Server } from './servers.ts';

export const LINK_BYTES_PER_SEC = 100e6;
const LINK_RUNS = 2;

export interface LinkResult {
  bytesPerSec: number;
  runsEach: number;
  ms: { stevedore: Series; direct: Series };
  ratio: number;
  pass: boolean;
}

export async function coldOverLink(
  registry: Registry,
  img: PushedImage,
  started: (p: Promise<Server>) => Promise<Server>,
  target: number,
): Promise<LinkResult> {
  const relay = await pacedRelay(Number(new URL(registry.url).port), LINK_BYTES_PER_SEC);
  const path = `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;
  const expectBytes = img.layers[0]!.size;
  const direct: number[] = [];
  const through: number[] = [];
  try {
    for (let i = 0; i < LINK_RUNS; i++) {
      direct.push((await download(`${relay.url}${path}`, { expectBytes })).ms);
      const sd = await started(startStevedore(relay.url));
      try {
        through.push((await download(`${sd.url}${path}`, { expectBytes })).ms);
      } finally {
        await sd.stop();
      }
    }
  } finally {
    await relay.close();
  }
  const ms = { stevedore: minSeries(through), direct: minSeries(direct) };
  const ratio = ms.stevedore.median / ms.direct.median;
  return { bytesPerSec: LINK_BYTES_PER_SEC, runsEach: LINK_RUNS, ms, ratio, pass: ratio <= target };
}
