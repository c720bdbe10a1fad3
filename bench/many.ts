// Bench stage 6: 1,000 keep-alive connections at once for 5 s, half on a cached manifest by digest, half on a
// small cached blob; zero errors expected; req/s, p99 and the server's peak RSS.
import type { PushedImage } from '../test/helpers/images.ts';
import { download } from './http.ts';
import { loadTest, type LoadResult } from './loadgen.ts';
import { sampleRss, type Server } from './servers.ts';

export const MANY_CONNECTIONS = 1_000;
const MANY_MS = 5_000;

export interface ManyResult {
  connections: number;
  manifest: LoadResult;
  blob: LoadResult;
  blobBytes: number;
  rps: number;
  errors: number;
  peakRssBytes: number;
  pass: boolean;
}

export async function manyConnections(sd: Server, img: PushedImage, accept: string): Promise<ManyResult> {
  const manifestPath = `/v2/${img.repo}/manifests/${img.manifestDigest}`;
  const blobPath = `/v2/${img.repo}/blobs/${img.configDigest}`;
  // Both must be cached before the load: one fetch each through stevedore.
  await download(`${sd.url}${blobPath}`, { expectBytes: img.configBytes.length });
  const sampler = sampleRss(sd.pid, 50);
  const half = MANY_CONNECTIONS / 2;
  const [manifest, blob] = await Promise.all([
    loadTest(sd.url, manifestPath, { method: 'GET', connections: half, durationMs: MANY_MS, headers: { accept }, timeoutMs: 20_000 }),
    loadTest(sd.url, blobPath, { method: 'GET', connections: half, durationMs: MANY_MS, timeoutMs: 20_000 }),
  ]);
  const { peak } = await sampler.stop();
  const errors = manifest.errors + manifest.non2xx + blob.errors + blob.non2xx;
  return {
    connections: MANY_CONNECTIONS,
    manifest,
    blob,
    blobBytes: img.configBytes.length,
    rps: manifest.rps + blob.rps,
    errors,
    peakRssBytes: peak,
    pass: errors === 0,
  };
}
