// Upstream-authoritative mode (clientCredentials: passthrough) with the real registry behind htpasswd and two users:
// cached content reaches a client only after the upstream confirmed that client's own credentials.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pushImage, type PushedImage } from '../helpers/images.ts';
import { basicAuth, startRegistry, type Registry } from '../helpers/registry.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const res = await request(url, { headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

describe('clientCredentials: passthrough', () => {
  let reg: Registry;
  let sd: InProcess;
  let img: PushedImage;
  const alice = basicAuth('alice', 'alice-pw');
  const bob = basicAuth('bob', 'bob-pw');

  before(async () => {
    reg = await startRegistry({ users: { alice: 'alice-pw', bob: 'bob-pw' } });
    img = await pushImage(`http://alice:alice-pw@${reg.host}`, 'team-a/app', 'v1', { layers: [{ seed: 77, sizeBytes: 9_000 }], mediaTypes: 'oci' });
    sd = await startInProcess({
      upstream: [reg.url],
      configObject: { retries: 0, upstreams: { [reg.host]: { url: reg.url, clientCredentials: 'passthrough' } } },
    });
  });
  after(async () => {
    await sd?.stop();
    await reg?.destroy();
  });

  test("the client's credentials go upstream; cached content needs the upstream's yes for each client", async () => {
    const m = `${sd.url}/v2/team-a/app/manifests/v1`;
    const b = `${sd.url}/v2/team-a/app/blobs/${img.layers[0]!.digest}`;
    const first = await get(m, alice);
    assert.equal(first.status, 200);
    assert.ok(first.body.equals(img.manifestBytes));
    assert.equal((await get(b, alice)).status, 200);
    // Cached now; a client without credentials, or with wrong ones, still gets nothing.
    for (const h of [{}, basicAuth('alice', 'wrong'), basicAuth('mallory', 'x')]) {
      for (const url of [m, b]) {
        const r = await get(url, h);
        assert.equal(r.status, 401, `${url} ${JSON.stringify(h)}: ${r.status}`);
        assert.equal(r.headers['www-authenticate'], 'Basic realm="stevedore"');
        assert.ok(!r.body.includes(img.manifestBytes.subarray(0, 40)));
      }
    }
    // bob is confirmed by the registry (one HEAD with his credentials), then served from the cache.
    reg.clearRequests();
    const viaBob = await get(m, bob);
    assert.equal(viaBob.status, 200);
    assert.equal(viaBob.headers['x-stevedore-cache'], 'hit');
    const blob = await get(b, bob);
    assert.equal(blob.status, 200);
    assert.equal(blob.headers['x-stevedore-cache'], 'hit');
    await reg.waitForRequest((r) => r.method === 'HEAD' && r.uri.includes('/team-a/app/manifests/v1') && r.status === 200);
    const bobUpstream = reg.requests().filter((r) => r.uri.includes('/team-a/app/'));
    assert.deepEqual(
      bobUpstream.map((r) => `${r.method} ${r.status}`),
      ['HEAD 200'],
      'one confirmation for the repository, then cache hits',
    );
    // The positive answer is cached for a short TTL: no new confirmation right away.
    reg.clearRequests();
    assert.equal((await get(m, bob)).status, 200);
    assert.equal(reg.requests().filter((r) => r.uri.includes('/team-a/app/')).length, 0);
  });
});
