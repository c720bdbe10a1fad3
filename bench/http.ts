// Big-body measurement for the bench: timed whole-body downloads through undici (optionally hashed) and through curl.
import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { runCommand } from '../test/helpers/tmp.ts';

export interface Download {
  bytes: number;
  ms: number;
  /** decimal megabytes per second (10^6 bytes) */
  mbps: number;
  status: number;
  /** ms until the response headers arrived */
  headersMs: number;
  /** ms until all but the last byte had arrived (stevedore holds the last byte of a fill until it is committed) */
  allButLastMs: number;
  sha256?: string;
}

/** One pool of connections for the big downloads, generous idle timeouts so slow cold fills never trip them. */
const downloads = new Agent({ connections: 64, headersTimeout: 120_000, bodyTimeout: 120_000, keepAliveTimeout: 10_000 });

/**
 * GET url and count (and optionally hash) the body, discarding it. Time runs from sending the request to
 * the last byte. Throws on a non-200 status or when expectBytes does not match.
 */
export async function download(url: string, opts: { hash?: boolean; expectBytes?: number } = {}): Promise<Download> {
  const hasher = opts.hash ? createHash('sha256') : undefined;
  const t0 = performance.now();
  // reset: a new connection per download, so a stale keep-alive socket to a stopped server (whose port a
  // new server may reuse) is never picked; one TCP handshake per 512 MiB is noise.
  const res = await request(url, { dispatcher: downloads, reset: true });
  const headersMs = performance.now() - t0;
  let bytes = 0;
  if (res.statusCode !== 200) {
    const text = (await res.body.text()).slice(0, 500);
    throw new Error(`GET ${url}: ${res.statusCode} ${text}`);
  }
  const penultimate = opts.expectBytes !== undefined ? opts.expectBytes - 1 : Infinity;
  let allButLastMs = NaN;
  // 'data' events, not for-await: the async iterator costs a promise per chunk and makes this client the
  // bottleneck well below what the servers can send over loopback.
  await new Promise<void>((resolve, reject) => {
    res.body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hasher?.update(chunk);
      if (bytes >= penultimate && Number.isNaN(allButLastMs)) allButLastMs = performance.now() - t0;
    });
    res.body.once('end', resolve);
    res.body.once('error', reject);
  });
  const ms = performance.now() - t0;
  if (opts.expectBytes !== undefined && bytes !== opts.expectBytes) throw new Error(`GET ${url}: got ${bytes} bytes, expected ${opts.expectBytes}`);
  const out: Download = { bytes, ms, mbps: bytes / 1e6 / (ms / 1000), status: res.statusCode, headersMs, allButLastMs };
  if (hasher) out.sha256 = `sha256:${hasher.digest('hex')}`;
  return out;
}

/**
 * The same download by curl, as Go clients (containerd, Docker) behave: a native client far cheaper per byte than
 * any Node client. Returns MB/s; throws when curl fails, the status is not 200 or the size is wrong.
 */
export async function curlDownload(url: string, expectBytes: number): Promise<number> {
  const r = await runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url], { timeoutMs: 120_000 });
  const [status, size, secs] = r.stdout.trim().split(' ').map(Number);
  if (r.code !== 0 || status !== 200 || size !== expectBytes)
    throw new Error(`curl ${url}: exit ${r.code}, status ${status}, ${size} bytes: ${r.stderr.slice(0, 300)}`);
  return size / 1e6 / secs!;
}

/** `clients` curl processes at once on one URL: aggregate MB/s (all bytes over the wall time of the slowest). */
export async function parallelCurl(url: string, clients: number, expectBytes: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, () => curlDownload(url, expectBytes)));
  return (clients * expectBytes) / 1e6 / ((performance.now() - t0) / 1000);
}

export async function closeDownloads(): Promise<void> {
  await downloads.close().catch(() => undefined);
}
