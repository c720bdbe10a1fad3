// Small blobs (configs) are served from memory after the first hit, and eviction drops them from memory too.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';
import { sha256 } from '../helpers/http.ts';

async function get(url: string, range?: string) {
  const res = await request(url, range ? { headers: { range } } : {});
  return { status: res.statusCode, cache: res.headers['x-stevedore-cache'], body: Buffer.from(await res.body.arrayBuffer()) };
}

describe('small blobs in memory', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const small = randomBytes(3000);
  let digest: string;

  before(async () => {
    fake = await startFakeUpstream();
    digest = fake.addBlob('app/c', small);
    sd = await startInProcess({ upstream: [fake.url] });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('after the first hit a small blob is served from memory (even with its file gone), Range included', async () => {
    assert.equal((await get(`${sd.url}/v2/app/c/blobs/${digest}`)).cache, 'miss');
    await waitFor('committed', () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 5_000, 10);
    const hit = await get(`${sd.url}/v2/app/c/blobs/${digest}`);
    assert.deepEqual([hit.status, hit.cache, sha256(hit.body)], [200, 'hit', digest]);
    rmSync(sd.store.paths.blob(digest as never));
    const fromMemory = await get(`${sd.url}/v2/app/c/blobs/${digest}`, 'bytes=10-19');
    assert.deepEqual([fromMemory.status, fromMemory.cache], [206, 'hit']);
    assert.ok(fromMemory.body.equals(small.subarray(10, 20)));
    assert.equal(fake.count('GET', digest), 1);
  });

  test('an evicted small blob is not served from memory: it is fetched again', async () => {
    const r = await sd.eviction.sweep({ force: 1e12 });
    assert.ok(r.evicted.some((e) => e.digest === digest));
    const again = await get(`${sd.url}/v2/app/c/blobs/${digest}`);
    assert.deepEqual([again.status, again.cache, sha256(again.body)], [200, 'miss', digest]);
    assert.equal(fake.count('GET', digest), 2);
  });
});
