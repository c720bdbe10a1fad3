// `serve --workers N` (node:cluster): one upstream GET for a digest across workers, exact bytes, metrics summed
// over workers, every worker stopped gracefully on SIGTERM.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pushBigLayer, type PushedImage } from '../helpers/images.ts';
import { pacedRelay } from '../helpers/paced-relay.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { sleep, waitFor } from '../helpers/tmp.ts';

const CLIENTS = 20;

/** GET on a new connection (so the cluster hands it to the next worker); body hashed. */
async function get(url: string): Promise<{ status: number; sha256: string; bytes: number; outcome: string }> {
  const res = await request(url, { reset: true, signal: AbortSignal.timeout(60_000) });
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of res.body) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { status: res.statusCode, sha256: `sha256:${h.digest('hex')}`, bytes, outcome: String(res.headers['x-stevedore-cache']) };
}

/** Distinct workers that logged an access line for `path` (every line of a worker carries its index). */
function servingWorkers(logs: string, path: string): Set<number> {
  const workers = new Set<number>();
  for (const line of logs.split('\n')) {
    if (!line.includes('"msg":"request"') || !line.includes(path)) continue;
    const m = /"worker":(\d+)/.exec(line);
    if (m) workers.add(Number(m[1]));
  }
  return workers;
}

/** The pids the workers logged when they started listening. */
function workerPids(logs: string): number[] {
  return [...logs.matchAll(/"pid":(\d+)[^\n]*"msg":"worker listening"/g)].map((m) => Number(m[1]));
}

describe('serve --workers 2', () => {
  let registry: Registry;
  let relay: { url: string; close(): Promise<void> };
  let img: PushedImage;
  let sd: StevedoreProcess | undefined;

  before(async () => {
    registry = await startRegistry();
    img = await pushBigLayer(registry.url, 'work/big', 'v1', 24, { seed: 11 });
    // A 40 MB/s link: the fill of 24 MiB runs for ~0.6 s, so all clients arrive while it is in flight.
    relay = await pacedRelay(Number(new URL(registry.url).port), 40e6);
  });
  after(async () => {
    await sd?.stop();
    await relay?.close();
    await registry?.destroy();
  });

  test('20 concurrent cold GETs spread over the workers: exactly one upstream GET, every body exact', async () => {
    sd = await startStevedore({ upstreams: [relay.url], workers: 2 });
    // /healthz answers once the first worker listens; the primary says so when all of them do.
    const s = sd;
    await waitFor('both workers listening', () => s.logs().includes('"msg":"stevedore listening"'), 15_000, 50);
    const layer = img.layers[0]!;
    const url = `${sd.url}/v2/${img.repo}/blobs/${layer.digest}`;
    registry.clearRequests();
    const got = await Promise.all(Array.from({ length: CLIENTS }, () => get(url)));
    for (const g of got) {
      assert.equal(g.status, 200);
      assert.equal(g.bytes, layer.size);
      assert.equal(g.sha256, layer.digest);
    }
    await sleep(300); // the registry logs a request just after answering it
    const gets = registry.requests().filter((r) => r.method === 'GET' && r.uri.includes(layer.digest));
    assert.equal(gets.length, 1, `upstream GETs: ${JSON.stringify(gets)}`);
    assert.equal(got.filter((g) => g.outcome === 'miss').length, 1, `outcomes: ${got.map((g) => g.outcome).join(',')}`);
    // Both workers answered some of the 20 (else this proved nothing about coordination across processes).
    assert.equal(servingWorkers(sd.logs(), layer.digest).size, 2, 'requests were served by both workers');
    // A later GET is a hit in whichever worker takes it.
    const again = await get(url);
    assert.equal(again.outcome, 'hit');
    assert.equal(again.sha256, layer.digest);
  });

  test('/metrics counts the requests of all workers, whichever worker answers', async () => {
    assert.ok(sd, 'the previous test started stevedore');
    const url = `${sd.url}/metrics`;
    for (let i = 0; i < 4; i++) {
      const res = await request(url, { reset: true });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200);
      const m = /stevedore_cache_requests_total\{kind="blob",outcome="coalesced"\} (\d+)/.exec(text);
      const miss = /stevedore_cache_requests_total\{kind="blob",outcome="miss"\} (\d+)/.exec(text);
      const hit = /stevedore_cache_requests_total\{kind="blob",outcome="hit"\} (\d+)/.exec(text);
      assert.equal(Number(m?.[1] ?? 0) + Number(miss?.[1] ?? 0) + Number(hit?.[1] ?? 0), CLIENTS + 1, text);
    }
  });

  test('SIGTERM stops every worker and the primary exits 0', async () => {
    assert.ok(sd, 'the first test started stevedore');
    const pids = workerPids(sd.logs());
    assert.equal(pids.length, 2, sd.logs());
    const code = await sd.signal('SIGTERM');
    assert.equal(code, 0);
    for (const pid of pids) {
      assert.throws(() => process.kill(pid, 0), 'worker process is gone');
    }
    sd = undefined;
  });
});
