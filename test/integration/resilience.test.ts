// Upstream outages: cache served while the registry is down, the circuit breaker opens and closes, --offline never contacts upstream.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pushMultiLayer, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, sleep, waitFor, type TempDir } from '../helpers/tmp.ts';

interface OciErr {
  status: number;
  code: string;
  reason: string;
}

async function get(url: string, accept?: string): Promise<{ status: number; body: Buffer; cache: unknown }> {
  const res = await request(url, { headers: accept ? { accept } : {}, signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()), cache: res.headers['x-stevedore-cache'] };
}

async function ociError(url: string): Promise<OciErr> {
  const r = await get(url);
  const e = (JSON.parse(r.body.toString()) as { errors: { code: string; detail?: { reason?: string } }[] }).errors[0]!;
  return { status: r.status, code: e.code, reason: String(e.detail?.reason) };
}

async function metric(sd: StevedoreProcess, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${sd.url}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? undefined : Number(m.slice(m.lastIndexOf(' ') + 1));
}

const readyz = async (sd: StevedoreProcess) => {
  const res = await fetch(`${sd.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { offline: boolean; upstreams: { upstream: string; open: boolean; failures: number }[] } };
};

describe('registry stopped and restarted; circuit breaker', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let cached: PushedImage;
  let later: PushedImage;

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    cached = await pushMultiLayer(reg.url, 'test/cached', 'v1', 2);
    later = await pushMultiLayer(reg.url, 'test/later', 'v1', 2);
    sd = await startStevedore({ upstreams: [reg.url], tagTtl: 300, config: { retries: 0, circuitBreaker: { failures: 2, cooldown: 1 } } });
  });
  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  const pull = (ref: string, name: string) => copyToOciDir(`docker://${sd.host}/${ref}`, path.join(tmp.path, name));

  test('cached content is served throughout an upstream outage, by tag (within its TTL) and by digest', async () => {
    assert.equal((await pull('test/cached:v1', 'warm')).code, 0);
    await reg.stop();
    const byTag = await pull('test/cached:v1', 'down-tag');
    assert.equal(byTag.code, 0, byTag.stderr);
    const byDigest = await pull(`test/cached@${cached.manifestDigest}`, 'down-digest');
    assert.equal(byDigest.code, 0, byDigest.stderr);
    const m = await get(`${sd.url}/v2/test/cached/manifests/v1`, cached.manifestMediaType);
    assert.deepEqual([m.status, m.cache], [200, 'hit']);
    assert.ok(m.body.equals(cached.manifestBytes));
  });

  test('upstream down: after 2 failures the circuit opens, later requests fail fast without an upstream attempt', async () => {
    const uncached = [`${sd.url}/v2/test/later/manifests/v1`, `${sd.url}/v2/test/later/blobs/${later.layers[0]!.digest}`];
    const first = [await ociError(uncached[0]!), await ociError(uncached[1]!)];
    assert.deepEqual(
      first.map((e) => [e.status, e.code]),
      [
        [404, 'MANIFEST_UNKNOWN'],
        [404, 'BLOB_UNKNOWN'],
      ],
    );
    for (const e of first) assert.match(e.reason, /unreachable/);
    const fast: OciErr[] = [];
    for (const i of [0, 1, 0, 1, 0]) fast.push(await ociError(uncached[i]!)); // one at a time: concurrent ones would coalesce
    for (const e of fast) {
      assert.equal(e.status, 404);
      assert.match(e.reason, /circuit open/);
    }
    const attempts = await metric(sd, new RegExp(`^stevedore_upstream_request_seconds_count\\{upstream="${reg.host}",method="GET",status="error"\\} `));
    assert.equal(attempts, 2, 'only the first two reached for the network');
    assert.equal(await metric(sd, new RegExp(`^stevedore_upstream_errors_total\\{upstream="${reg.host}",reason="circuit-open"\\} `)), 5);
    const r = await readyz(sd);
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.body.upstreams.find((u) => u.upstream === reg.host),
      { upstream: reg.host, open: true, failures: 2 },
    );
    assert.equal(await metric(sd, new RegExp(`^stevedore_upstream_circuit_open\\{upstream="${reg.host}"\\} `)), 1);
    // Hits never ask the breaker.
    assert.equal((await pull('test/cached:v1', 'open-circuit')).code, 0);
  });

  test('registry back: after the cooldown a probe succeeds, the circuit closes, uncached images pull again', async () => {
    await reg.start();
    const ok = await waitFor(
      'a request through the half-open circuit',
      async () => {
        const r = await get(`${sd.url}/v2/test/later/manifests/v1`, later.manifestMediaType);
        return r.status === 200 ? r : undefined;
      },
      15_000,
      250,
    );
    assert.ok(ok.body.equals(later.manifestBytes));
    assert.equal(await metric(sd, new RegExp(`^stevedore_upstream_circuit_open\\{upstream="${reg.host}"\\} `)), 0);
    assert.deepEqual(
      (await readyz(sd)).body.upstreams.find((u) => u.upstream === reg.host),
      { upstream: reg.host, open: false, failures: 0 },
    );
    const r = await pull('test/later:v1', 'after');
    assert.equal(r.code, 0, r.stderr);
  });
});

describe('--offline on a data dir filled by a connected instance', () => {
  let reg: Registry;
  let tmp: TempDir;
  let data: TempDir;
  let img: PushedImage;
  let notPulled: PushedImage;
  let off: StevedoreProcess | undefined;

  before(async () => {
    tmp = makeTempDir();
    data = makeTempDir('stevedore-offline-data-');
    reg = await startRegistry();
    img = await pushMultiLayer(reg.url, 'test/air', 'v1', 3);
    notPulled = await pushMultiLayer(reg.url, 'test/air', 'v2', 1);
    const online = await startStevedore({ upstreams: [reg.url], dataDir: data.path, tagTtl: 1 });
    try {
      const r = await copyToOciDir(`docker://${online.host}/test/air:v1`, path.join(tmp.path, 'online'));
      assert.equal(r.code, 0, r.stderr);
    } finally {
      await online.stop();
    }
  });
  after(async () => {
    await Promise.allSettled([off?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
    await data?.cleanup();
  });

  test('registry stopped: the offline instance serves cached tags and digests; anything else is 404 saying it is offline', async () => {
    await reg.stop();
    off = await startStevedore({ upstreams: [reg.url], dataDir: data.path, tagTtl: 1, extraArgs: ['--offline'] });
    for (const [ref, name] of [
      ['test/air:v1', 'tag'],
      [`test/air@${img.manifestDigest}`, 'digest'],
    ] as const) {
      const r = await copyToOciDir(`docker://${off.host}/${ref}`, path.join(tmp.path, `off-${name}`));
      assert.equal(r.code, 0, r.stderr);
    }
    for (const [url, code] of [
      [`${off.url}/v2/test/air/manifests/v2`, 'MANIFEST_UNKNOWN'],
      [`${off.url}/v2/test/air/manifests/${notPulled.manifestDigest}`, 'MANIFEST_UNKNOWN'],
      [`${off.url}/v2/test/air/blobs/${notPulled.layers[0]!.digest}`, 'BLOB_UNKNOWN'],
      [`${off.url}/v2/test/other/manifests/latest`, 'MANIFEST_UNKNOWN'],
    ] as const) {
      const e = await ociError(url);
      assert.deepEqual([e.status, e.code], [404, code], url);
      assert.match(e.reason, /offline/, url);
    }
    const r = await readyz(off);
    assert.deepEqual([r.status, r.body.offline], [200, true]);
  });

  test('registry running again: the offline instance still sends it nothing, even for a tag past its TTL', async () => {
    assert.ok(off);
    await reg.start();
    reg.clearRequests();
    await sleep(1_200); // past the 1 s tag TTL
    const r = await copyToOciDir(`docker://${off.host}/test/air:v1`, path.join(tmp.path, 'off-again'));
    assert.equal(r.code, 0, r.stderr);
    const m = await get(`${off.url}/v2/test/air/manifests/v1`, img.manifestMediaType);
    assert.deepEqual([m.status, m.cache], [200, 'hit']);
    assert.equal((await ociError(`${off.url}/v2/test/air/manifests/v2`)).status, 404);
    assert.equal((await ociError(`${off.url}/v2/test/air/blobs/${notPulled.layers[0]!.digest}`)).status, 404);
    // Proof that the registry logs what it is sent: one request of our own, then wait for it.
    await (await request(`${reg.url}/v2/test/air/manifests/v1`, { method: 'HEAD', headers: { accept: img.manifestMediaType } })).body.dump();
    await reg.waitForRequest((q) => q.method === 'HEAD');
    assert.deepEqual(
      reg.requests().map((q) => `${q.method} ${q.uri}`),
      ['HEAD /v2/test/air/manifests/v1'],
    );
  });
});
