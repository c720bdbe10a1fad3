// Production mode with the real nginx in front (deploy/nginx/stevedore.conf, accelRedirect): stevedore decides and
// counts every request, nginx ships cached blobs from the CAS by X-Accel-Redirect; misses stream through stevedore.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pushBigLayer, type PushedImage } from '../helpers/images.ts';
import { startFront, type Front } from '../helpers/nginx-front.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers, signal: AbortSignal.timeout(30_000) });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('nginx in front, X-Accel-Redirect for hits', () => {
  let registry: Registry;
  let img: PushedImage;
  let sd: StevedoreProcess;
  let front: Front;
  let blobUrl: string;
  let bytes: Buffer;

  before(async () => {
    registry = await startRegistry();
    img = await pushBigLayer(registry.url, 'accel/app', 'v1', 3, { seed: 7 });
    bytes = readFileSync(img.layers[0]!.path!);
    sd = await startStevedore({ upstreams: [registry.url], config: { accelRedirect: { prefix: '/_cas/' } } });
    front = await startFront(sd.host, sd.dataDir);
    blobUrl = `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;
  });
  after(async () => {
    await front?.stop();
    await sd?.stop();
    await registry?.destroy();
  });

  test('a miss streams through stevedore; the hit after it is sent by nginx with the same bytes and headers', async () => {
    const miss = await get(`${front.url}${blobUrl}`);
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['x-stevedore-cache'], 'miss');
    assert.equal(sha(miss.body), img.layers[0]!.digest);
    // The row follows the response (readers finish at verification): wait until stevedore calls it a hit.
    const direct = await waitFor(
      'the blob to be committed',
      async () => {
        const r = await get(`${sd.url}${blobUrl}`);
        return r.headers['x-stevedore-cache'] === 'hit' ? r : undefined;
      },
      10_000,
      50,
    );
    // stevedore itself answers a hit with an empty body and the internal location of the verified file.
    assert.equal(direct.status, 200);
    assert.equal(direct.body.length, 0);
    assert.match(String(direct.headers['x-accel-redirect']), /^\/_cas\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    const hit = await get(`${front.url}${blobUrl}`);
    assert.equal(hit.status, 200);
    assert.equal(hit.body.length, bytes.length);
    assert.ok(hit.body.equals(bytes), 'bytes exact');
    assert.equal(hit.headers['content-length'], String(bytes.length));
    assert.equal(hit.headers['docker-content-digest'], img.layers[0]!.digest);
    assert.equal(hit.headers['x-stevedore-cache'], 'hit');
    assert.equal(hit.headers.etag, `"${img.layers[0]!.digest}"`);
    assert.equal(hit.headers['x-accel-redirect'], undefined, 'the internal path never reaches the client');
  });

  test('Range on a hit: nginx answers 206 with the exact slice', async () => {
    const r = await get(`${front.url}${blobUrl}`, { range: 'bytes=1000-1999' });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], `bytes 1000-1999/${bytes.length}`);
    assert.ok(r.body.equals(bytes.subarray(1000, 2000)));
    const tail = await get(`${front.url}${blobUrl}`, { range: 'bytes=-10' });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(bytes.subarray(bytes.length - 10)));
  });

  test('stevedore still decides: unknown digests, other repositories and the internal location are refused', async () => {
    const unknown = await get(`${front.url}/v2/${img.repo}/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(unknown.status, 404);
    assert.equal(JSON.parse(unknown.body.toString()).errors[0].code, 'BLOB_UNKNOWN');
    const other = await get(`${front.url}/v2/accel/other/blobs/${img.layers[0]!.digest}`);
    assert.equal(other.status, 404, 'another repository does not get the cached blob');
    const hex = img.layers[0]!.digest.slice('sha256:'.length);
    const internal = await get(`${front.url}/_cas/sha256/${hex.slice(0, 2)}/${hex}`);
    assert.equal(internal.status, 404);
  });

  test('nginx keeps its connection to stevedore across hits: no new connection per accelerated request', async () => {
    // Each new upstream connection costs a handshake (and a hand-over under --workers) before nginx can send a byte.
    const accepted = async (): Promise<number> =>
      Number(/^stevedore_connections_accepted_total (\d+)/m.exec((await get(`${sd.url}/metrics`)).body.toString())?.[1] ?? NaN);
    const before = await accepted();
    for (let i = 0; i < 10; i++) {
      const r = await get(`${front.url}${blobUrl}`, { range: 'bytes=0-99' });
      assert.equal(r.status, 206);
      assert.ok(r.body.equals(bytes.subarray(0, 100)));
    }
    const grew = (await accepted()) - before;
    // nginx may open one (its keepalive pool was empty), and undici's own /metrics connection may be new
    assert.ok(grew <= 2, `stevedore accepted ${grew} connections for 10 hits through nginx`);
  });

  test('no listener-leak warning after misses and hits (MaxListenersExceededWarning: too many listeners on a response)', () => {
    assert.doesNotMatch(sd.logs(), /MaxListenersExceededWarning|memory leak detected/);
  });

  test('the hits nginx sent are counted in stevedore metrics', async () => {
    const text = (await get(`${front.url}/metrics`)).body.toString();
    const hits = Number(/stevedore_cache_requests_total\{kind="blob",outcome="hit"\} (\d+)/.exec(text)?.[1] ?? 0);
    const served = Number(/stevedore_served_bytes_total\{kind="blob",outcome="hit"\} (\d+)/.exec(text)?.[1] ?? 0);
    // direct hit(s) while waiting + the full hit + two ranges
    assert.ok(hits >= 4, text);
    assert.ok(served >= bytes.length + 1000 + 10, text);
  });
});
