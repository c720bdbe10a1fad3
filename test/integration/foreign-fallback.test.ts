// Ordinary layers that carry `urls`: the upstream first, the allowed URLs only when it lacks the blob; no credentials leak.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { makeLayerFile, MT } from '../helpers/images.ts';
import { startNginx, type Nginx } from '../helpers/nginx.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(url: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

describe('ordinary layers with urls (fake upstream with credentials, nginx URL host)', () => {
  let fake: FakeUpstream;
  let web: Nginx;
  let sd: InProcess;
  let missing: { digest: string; size: number; bytes: Buffer };
  let present: { digest: string; size: number; bytes: Buffer };

  before(async () => {
    [fake, web] = await Promise.all([startFakeUpstream(), startNginx()]);
    fake.requireAuth({ service: 'fake-registry', username: 'alice', password: 's3cret' });
    const [a, b] = await Promise.all([makeLayerFile(8101, 120_000), makeLayerFile(8102, 90_000)]);
    missing = { digest: a.digest, size: a.size, bytes: readFileSync(a.path) };
    present = { digest: b.digest, size: b.size, bytes: readFileSync(b.path) };
    for (const l of [missing, present]) web.put(`/layers/${l.digest}`, l.bytes);
    // The upstream holds the config and one layer; the other layer exists only at its url.
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    fake.addBlob('app/x', config);
    fake.addBlob('app/x', present.bytes);
    const layer = (l: typeof missing) => ({ mediaType: MT.ociGzip, digest: l.digest, size: l.size, urls: [`${web.url}/layers/${l.digest}`] });
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
        layers: [layer(missing), layer(present)],
      }),
    );
    fake.addManifest('app/x', 'v1', manifest, MT.ociManifest);
    sd = await startInProcess({
      upstream: [fake.url],
      configObject: {
        retries: 0,
        upstreams: { [fake.host]: { url: fake.url, username: 'alice', password: 's3cret' } },
        foreign: { rules: [{ match: `http://127.0.0.1:${web.port}/layers/*`, action: 'fetch', allowPrivate: ['127.0.0.1/32'] }] },
      },
    });
  });

  after(async () => {
    await sd?.stop();
    await Promise.allSettled([fake?.stop(), web?.destroy()]);
  });

  test('upstream 404 -> the allowed url, verified and cached; a layer upstream has never touches its url', async () => {
    assert.equal((await get(`${sd.url}/v2/app/x/manifests/v1`)).status, 200);
    const head = await get(`${sd.url}/v2/app/x/blobs/${missing.digest}`, 'HEAD');
    assert.deepEqual([head.status, head.headers['content-length']], [200, String(missing.size)]);
    const r = await get(`${sd.url}/v2/app/x/blobs/${missing.digest}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), missing.digest);
    assert.ok(fake.count('GET', `/blobs/${missing.digest}`) >= 1, 'the upstream was asked first');
    assert.equal(web.count(missing.digest), 1);
    assert.equal((await get(`${sd.url}/v2/app/x/blobs/${missing.digest}`)).status, 200);
    assert.equal(web.count(missing.digest), 1, 'served from the cache the second time');

    const p = await get(`${sd.url}/v2/app/x/blobs/${present.digest}`);
    assert.equal(sha256(p.body), present.digest);
    assert.equal(web.count(present.digest), 0);
    assert.equal(sd.foreign.stats().fetch, 1);
  });

  test('upstream credentials and tokens never reach the url host', async () => {
    assert.ok(
      fake.requests().some((q) => String(q.headers.authorization ?? '').startsWith('Bearer ')),
      'the upstream did get a token',
    );
    assert.ok(web.requests().length > 0);
    for (const q of web.requests()) assert.deepEqual([q.authorization, q.cookie], ['-', '-']);
  });

  test('a layer larger than the storage budget is streamed from its url, verified, and not stored', async () => {
    const small = await startInProcess({
      upstream: [fake.url],
      configObject: {
        retries: 0,
        maxSize: '100KB',
        upstreams: { [fake.host]: { url: fake.url, username: 'alice', password: 's3cret' } },
        foreign: { rules: [{ match: `http://127.0.0.1:${web.port}/layers/*`, action: 'fetch', allowPrivate: ['127.0.0.1/32'] }] },
      },
    });
    try {
      assert.equal((await get(`${small.url}/v2/app/x/manifests/v1`)).status, 200);
      const before = web.count(missing.digest);
      for (let i = 1; i <= 2; i++) {
        const r = await get(`${small.url}/v2/app/x/blobs/${missing.digest}`);
        assert.equal(r.status, 200);
        assert.ok(r.body.equals(missing.bytes));
        assert.equal(web.count(missing.digest), before + i, 'fetched again: nothing was stored');
      }
      assert.equal(small.meta.blobSize(missing.digest as never), undefined);
    } finally {
      await small.stop();
    }
  });
});
