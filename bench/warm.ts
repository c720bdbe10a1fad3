// Bench stage 1: warm (cached) big blob, one client at a time with curl and with undici, then 10 curl clients
// at once: nginx sendfile, the upstream direct, the peer (distribution proxy), stevedore Node-only (1 and N
// workers) and stevedore behind nginx with X-Accel-Redirect (deploy/nginx/stevedore.conf). Same run, rotated order.
import path from 'node:path';
import type { PushedImage } from '../test/helpers/images.ts';
import { startFront } from '../test/helpers/nginx-front.ts';
import type { Registry } from '../test/helpers/registry.ts';
import { curlDownload, download, parallelCurl } from './http.ts';
import { startPeer } from './peer.ts';
import { maxSeries, type Series } from './report.ts';
import { startStevedore, type Server } from './servers.ts';

const CURL_RUNS = 5;
const UNDICI_RUNS = 2;
export const PARALLEL_CLIENTS = 10;

export const WHO = ['nginx', 'upstream', 'peer', 'stevedore', 'stevedore1', 'front'] as const;
export type Who = (typeof WHO)[number];
export const WHO_LABEL: Record<Who, string> = {
  nginx: 'nginx sendfile, same file',
  upstream: 'upstream registry direct',
  peer: 'peer: distribution proxy',
  stevedore: 'stevedore (npm start, N workers)',
  stevedore1: 'stevedore --workers 1',
  front: 'nginx + stevedore X-Accel-Redirect',
};

export interface WarmResult {
  workers: number;
  sha256Verified: boolean;
  curl: Record<Who, Series>;
  undici: Record<Who, Series>;
  parallel: Record<Who, number>;
}

export async function warm(
  registry: Registry,
  nginx: Server,
  big: PushedImage,
  dataDir: string,
  workers: number,
  started: <S extends Server>(p: Promise<S>) => Promise<S>,
): Promise<{ result: WarmResult; stevedore: Server }> {
  const layer = big.layers[0]!;
  const expectBytes = layer.size;
  const blob = `/v2/${big.repo}/blobs/${layer.digest}`;
  const sd = await started(startStevedore(registry.url, { dataDir, tagTtl: 3600, workers }));
  const peer = await started(startPeer(registry.url));
  // Pull once through each cache (fills it), then again from the cache, hashed: the bytes served are the blob.
  let sha256Verified = true;
  for (const s of [sd, peer]) {
    for (let i = 0; i < 2; i++) sha256Verified &&= (await download(`${s.url}${blob}`, { hash: true, expectBytes })).sha256 === layer.digest;
  }
  const sd1 = await started(startStevedore(registry.url, { dataDir, tagTtl: 3600, workers: 1, config: {} }));
  const accel = await started(startStevedore(registry.url, { dataDir, tagTtl: 3600, workers, config: { accelRedirect: { prefix: '/_cas/' } } }));
  const front = await started(startFront(`127.0.0.1:${accel.port}`, dataDir));
  sha256Verified &&= (await download(`${front.url}${blob}`, { hash: true, expectBytes })).sha256 === layer.digest;
  const urls: Record<Who, string> = {
    nginx: `${nginx.url}/${path.basename(layer.path!)}`,
    upstream: `${registry.url}${blob}`,
    peer: `${peer.url}${blob}`,
    stevedore: `${sd.url}${blob}`,
    stevedore1: `${sd1.url}${blob}`,
    front: `${front.url}${blob}`,
  };
  // One unmeasured pass for those not read yet: JIT-warm, fault the files into the page cache.
  for (const who of ['nginx', 'upstream', 'stevedore1'] as const) await curlDownload(urls[who], expectBytes);
  const rotate = async (who: readonly Who[], runs: number, one: (url: string) => Promise<number>): Promise<Record<Who, Series>> => {
    const got = Object.fromEntries(WHO.map((w) => [w, [] as number[]])) as Record<Who, number[]>;
    for (let i = 0; i < runs; i++) {
      // rotate who goes first, so no one always runs right after the same neighbour
      for (let j = 0; j < who.length; j++) {
        const w = who[(i + j) % who.length]!;
        got[w].push(await one(urls[w]));
      }
    }
    return Object.fromEntries(WHO.map((w) => [w, maxSeries(got[w].length ? got[w] : [NaN])])) as Record<Who, Series>;
  };
  const curl = await rotate(WHO, CURL_RUNS, (u) => curlDownload(u, expectBytes));
  // The Node client is the bottleneck itself: a second opinion on the main three only.
  const undici = await rotate(['nginx', 'peer', 'stevedore'], UNDICI_RUNS, async (u) => (await download(u, { expectBytes })).mbps);
  const parallel = { upstream: NaN } as Record<Who, number>;
  for (const who of WHO) if (who !== 'upstream') parallel[who] = await parallelCurl(urls[who], PARALLEL_CLIENTS, expectBytes);
  for (const s of [front, accel, sd1, peer]) await s.stop();
  return { result: { workers, sha256Verified, curl, undici, parallel }, stevedore: sd };
}
