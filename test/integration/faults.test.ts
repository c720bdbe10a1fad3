// Blob fault injection against the fake upstream: wrong bytes, cuts, 429s, slow upstreams, streaming, coalescing, ranges, HEAD.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, manifest, OCI_MANIFEST, ociCode, sha256 } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

async function notStored(sd: InProcess, digest: string): Promise<void> {
  // The failed fill removes its temp file as it settles (the client may see the abort a moment earlier).
  await waitFor('the fill to settle', () => sd.proxy.blobs.fillsInFlight === 0, 10_000, 10);
  assert.equal(sd.meta.blobSize(digest as never), undefined, 'no blob row');
  assert.equal(existsSync(sd.store.paths.blob(digest as never)), false, 'no CAS file');
  const files = readdirSync(sd.store.paths.blobsDir, { recursive: true }).map(String);
  assert.ok(!files.some((f) => f.endsWith(digest.slice(7))), 'no file under blobs/');
  assert.deepEqual(readdirSync(sd.store.paths.tmpDir), [], 'no temp leftovers');
}

describe('blob faults', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const blobUrl = (repo: string, d: string): string => `${sd.url}/v2/${repo}/blobs/${d}`;

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], configObject: { retries: 1 } });
  });
  after(async () => {
    await fake?.stop();
    await sd?.stop();
  });

  test('wrong bytes for a digest: never a clean complete 200, nothing stored, next request goes upstream again', async () => {
    const bytes = randomBytes(300_000);
    const d = fake.addBlob('w/x', bytes);
    fake.setFault(d, { kind: 'wrong-bytes' });
    const r = await get(blobUrl('w/x', d));
    const clean = r.status === 200 && r.error === undefined && r.body.length === Number(r.headers['content-length']);
    assert.equal(clean, false, `status ${r.status}, ${r.body.length} bytes, error ${String(r.error)}`);
    assert.ok(r.body.length < bytes.length, 'the whole wrong body must never reach the client');
    await notStored(sd, d);
    fake.clearFault(d);
    const again = await get(blobUrl('w/x', d));
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), d);
    assert.equal(fake.count('GET', `/blobs/${d}`), 2);
  });

  test('connection cut mid-blob: resumed with Range, client gets the exact bytes, blob cached', async () => {
    const bytes = randomBytes(1 << 20);
    const d = fake.addBlob('c/x', bytes);
    fake.setFault(d, { kind: 'cut', afterBytes: 300_000, times: 1 });
    const r = await get(blobUrl('c/x', d));
    assert.equal(r.status, 200);
    assert.equal(r.error, undefined);
    assert.equal(sha256(r.body), d);
    const gets = fake.requests().filter((q) => q.method === 'GET' && q.path.includes(`/blobs/${d}`));
    assert.equal(gets.length, 2);
    const resume = /^bytes=(\d+)-$/.exec(String(gets[1]!.headers.range));
    assert.ok(resume, `second GET has Range bytes=N-, got ${String(gets[1]!.headers.range)}`);
    assert.ok(Number(resume[1]) > 0 && Number(resume[1]) <= 300_000);
    // The client may finish as soon as the digest is verified; the commit follows.
    await waitFor('the fill to commit', () => sd.proxy.blobs.fillsInFlight === 0, 10_000, 10);
    assert.equal(sd.meta.blobSize(d as never), bytes.length);
    assert.equal(sha256((await get(blobUrl('c/x', d))).body), d);
    assert.equal(fake.count('GET', `/blobs/${d}`), 2, 'served from cache');
  });

  test('429 with Retry-After: 1 once is retried; a long Retry-After goes back to the client as 429', async () => {
    const bytes = randomBytes(10_000);
    const d = fake.addBlob('r/x', bytes);
    fake.setFault(`/v2/r/x/blobs/${d}`, { kind: 'status', status: 429, retryAfter: 1, times: 1 });
    const r = await get(blobUrl('r/x', d));
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), d);
    assert.equal(fake.count('GET', `/blobs/${d}`), 2);

    fake.addManifest('r/x', 'v1', manifest(), OCI_MANIFEST);
    fake.setFault('/v2/r/x/manifests/v1', { kind: 'status', status: 429, retryAfter: 120 });
    const m = await get(`${sd.url}/v2/r/x/manifests/v1`);
    fake.clearFault('/v2/r/x/manifests/v1');
    assert.equal(m.status, 429);
    assert.equal(m.headers['retry-after'], '120');
    assert.match(String(m.headers['content-type']), /^application\/json/);
    assert.equal(ociCode(m).code, 'TOOMANYREQUESTS');
  });

  test("an upstream's absurd Retry-After reaches the client clamped to 1..3600 s", async () => {
    const inTwoHours = new Date(Date.now() + 2 * 3600_000).toUTCString();
    const cases: [string, string | undefined][] = [
      ['99999999999', '3600'],
      ['-5', '1'],
      [inTwoHours, '3600'],
      ['soon', undefined],
    ];
    for (const [i, [retryAfter, told]] of cases.entries()) {
      fake.addManifest('ra/x', `v${i}`, manifest(), OCI_MANIFEST);
      fake.setFault(`/v2/ra/x/manifests/v${i}`, { kind: 'status', status: 429, retryAfter });
      const m = await get(`${sd.url}/v2/ra/x/manifests/v${i}`);
      fake.clearFault(`/v2/ra/x/manifests/v${i}`);
      assert.equal(m.status, 429, retryAfter);
      assert.equal(ociCode(m).code, 'TOOMANYREQUESTS');
      assert.equal(m.headers['retry-after'], told, retryAfter);
    }
  });

  test('upstream headers slower than the header timeout: clean 404 naming the upstream, not a hang or 500', async () => {
    const slow = await startInProcess({ upstream: [fake.url], configObject: { timeouts: { headers: 300 }, retries: 0 } });
    try {
      const d = fake.addBlob('t/x', randomBytes(1000));
      fake.setFault(d, { kind: 'slow-headers', ms: 2000 });
      const b = await get(`${slow.url}/v2/t/x/blobs/${d}`);
      assert.equal(b.status, 404);
      assert.equal(ociCode(b).code, 'BLOB_UNKNOWN');
      assert.ok(JSON.stringify(ociCode(b).detail).includes(fake.host), JSON.stringify(ociCode(b).detail));

      fake.addManifest('t/x', 'v1', manifest(), OCI_MANIFEST);
      fake.setFault('/v2/t/x/manifests/v1', { kind: 'slow-headers', ms: 2000 });
      const m = await get(`${slow.url}/v2/t/x/manifests/v1`);
      assert.equal(m.status, 404);
      assert.equal(ociCode(m).code, 'MANIFEST_UNKNOWN');
      assert.ok(JSON.stringify(ociCode(m).detail).includes(fake.host), JSON.stringify(ociCode(m).detail));
    } finally {
      await slow.stop();
    }
  });

  test('a miss streams: the first bytes reach the client before upstream has sent the whole blob', async () => {
    const bytes = randomBytes(512 * 1024);
    const d = fake.addBlob('s/x', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 16 * 1024, tickMs: 10 });
    const res = await request(blobUrl('s/x', d), { signal: AbortSignal.timeout(20_000) });
    assert.equal(res.statusCode, 200);
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    const upstreamSentThen = fake.bytesSent(`/blobs/${d}`);
    assert.ok(!first.done && (first.value as Buffer).length > 0);
    assert.ok(upstreamSentThen < bytes.length, `upstream had sent ${upstreamSentThen} of ${bytes.length} bytes`);
    const chunks = [first.value as Buffer];
    for (let c = await it.next(); !c.done; c = await it.next()) chunks.push(c.value as Buffer);
    assert.equal(sha256(Buffer.concat(chunks)), d);
    fake.clearFault(d);
  });

  test('20 concurrent GETs of one uncached blob: one upstream GET, 20 identical correct bodies', async () => {
    const bytes = randomBytes(512 * 1024);
    const d = fake.addBlob('k/x', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 16 * 1024, tickMs: 10 });
    const all = await Promise.all(Array.from({ length: 20 }, () => get(blobUrl('k/x', d))));
    fake.clearFault(d);
    for (const r of all) {
      assert.equal(r.status, 200);
      assert.equal(r.error, undefined);
      assert.equal(sha256(r.body), d);
    }
    assert.equal(fake.count('GET', `/blobs/${d}`), 1);
  });

  test('a client that disconnects mid-download cancels only itself', async () => {
    const bytes = randomBytes(512 * 1024);
    const d = fake.addBlob('a/x', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 16 * 1024, tickMs: 10 });
    const ac = new AbortController();
    const a = await request(blobUrl('a/x', d), { signal: ac.signal });
    const itA = a.body[Symbol.asyncIterator]();
    assert.equal((await itA.next()).done, false);
    const b = await request(blobUrl('a/x', d), { signal: AbortSignal.timeout(20_000) });
    assert.equal(b.statusCode, 200);
    ac.abort();
    await assert.rejects(async () => {
      for (let c = await itA.next(); !c.done; c = await itA.next());
    });
    const bBody = Buffer.from(await b.body.arrayBuffer());
    fake.clearFault(d);
    assert.equal(sha256(bBody), d);
    await waitFor('the fill to commit', () => sd.proxy.blobs.fillsInFlight === 0, 10_000, 10);
    assert.equal(sd.meta.blobSize(d as never), bytes.length);
    assert.equal(sha256((await get(blobUrl('a/x', d))).body), d);
    assert.equal(fake.count('GET', `/blobs/${d}`), 1);
  });

  test('joining a running fill for another repo: served even if the fill completes while upstream confirms the repo', async () => {
    const bytes = randomBytes(256 * 1024);
    const d = fake.addBlob('j/a', bytes);
    fake.addBlob('j/b', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 16 * 1024, tickMs: 10 });
    fake.setFault(`/v2/j/b/blobs/${d}`, { kind: 'hold' }); // b's confirming HEAD waits until released
    const a = await request(blobUrl('j/a', d), { signal: AbortSignal.timeout(20_000) });
    const itA = a.body[Symbol.asyncIterator]();
    const chunks = [(await itA.next()).value as Buffer];
    const b = get(blobUrl('j/b', d));
    await waitFor('b confirming with a HEAD', () => fake.count('HEAD', `/v2/j/b/blobs/${d}`) === 1, 10_000, 10);
    for (let c = await itA.next(); !c.done; c = await itA.next()) chunks.push(c.value as Buffer);
    assert.equal(sha256(Buffer.concat(chunks)), d);
    await waitFor('fill finished', () => sd.proxy.blobs.fillsInFlight === 0, 10_000, 10);
    assert.equal(fake.releaseHeld(), 1);
    const rb = await b;
    fake.clearFaults();
    assert.equal(rb.status, 200, rb.body.toString().slice(0, 300));
    assert.equal(sha256(rb.body), d);
    assert.equal(fake.count('GET', `/blobs/${d}`), 1);
  });

  test('Range on a cached blob: 206 with the exact slice; unsatisfiable: 416 RANGE_INVALID with bytes */SIZE', async () => {
    const bytes = randomBytes(10_000);
    const d = fake.addBlob('g/x', bytes);
    assert.equal((await get(blobUrl('g/x', d))).status, 200);
    const before = fake.count('*', d);
    const r = await get(blobUrl('g/x', d), { range: 'bytes=100-199' });
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(bytes.subarray(100, 200)));
    assert.equal(r.headers['content-range'], 'bytes 100-199/10000');
    assert.equal(r.headers['content-length'], '100');
    const tail = await get(blobUrl('g/x', d), { range: 'bytes=-50' });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(bytes.subarray(9950)));
    assert.equal(tail.headers['content-range'], 'bytes 9950-9999/10000');
    const bad = await get(blobUrl('g/x', d), { range: 'bytes=10000-' });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], 'bytes */10000');
    assert.equal(ociCode(bad).code, 'RANGE_INVALID');
    assert.equal(fake.count('*', d), before, 'ranges of a cached blob never go upstream');
  });

  test('HEAD never downloads: uncached -> one upstream HEAD, zero GETs; cached and linked -> no upstream request', async () => {
    const bytes = randomBytes(70_000);
    const d = fake.addBlob('h/x', bytes);
    const h = await get(blobUrl('h/x', d), {}, 'HEAD');
    assert.equal(h.status, 200);
    assert.equal(h.headers['content-length'], String(bytes.length));
    assert.equal(h.headers['docker-content-digest'], d);
    assert.equal(fake.count('HEAD', `/blobs/${d}`), 1);
    assert.equal(fake.count('GET', `/blobs/${d}`), 0);
    assert.equal(sd.meta.blobSize(d as never), undefined);
    assert.equal(sha256((await get(blobUrl('h/x', d))).body), d);
    const before = fake.count('*', d);
    const h2 = await get(blobUrl('h/x', d), {}, 'HEAD');
    assert.equal(h2.status, 200);
    assert.equal(h2.headers['content-length'], String(bytes.length));
    assert.equal(fake.count('*', d), before);
  });
});
