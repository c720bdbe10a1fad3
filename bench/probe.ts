// Manifest latency while something else runs: a GET of a cached manifest by digest every 10 ms, each on a new
// connection (so under --workers the probes land on every worker, the busy one included), timed by the bench.
import { Agent, request } from 'undici';
import { sleep } from '../test/helpers/tmp.ts';

export interface ProbeLatency {
  count: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** probes that did not answer 200 */
  errors: number;
}

const probes = new Agent({ connections: 4, headersTimeout: 30_000, bodyTimeout: 30_000 });

async function once(url: string, accept: string): Promise<boolean> {
  try {
    const res = await request(url, { dispatcher: probes, reset: true, headers: { accept } });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/**
 * GETs `url` (a manifest by digest) once to have it cached, then starts `work` and probes until it settles:
 * `work`'s result with the probes' latencies.
 */
export async function probeWhile<T>(url: string, accept: string, work: () => Promise<T>): Promise<{ result: T; latency: ProbeLatency }> {
  if (!(await once(url, accept))) throw new Error(`probe ${url}: not 200 before the measurement`);
  let done = false;
  const settled = work().finally(() => {
    done = true;
  });
  const ms: number[] = [];
  let errors = 0;
  const loop = (async () => {
    while (!done) {
      const t0 = performance.now();
      if (!(await once(url, accept))) errors++;
      ms.push(performance.now() - t0);
      await sleep(10);
    }
  })();
  const result = await settled;
  await loop;
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { result, latency: { count: ms.length, p50ms: at(0.5), p99ms: at(0.99), maxms: sorted.at(-1) ?? NaN, errors } };
}

export async function closeProbes(): Promise<void> {
  await probes.close().catch(() => undefined);
}
