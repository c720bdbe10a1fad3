// A store that cannot be written (read-only or full data dir): misses pass through verified, cached content still serves.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { get, sha256 } from '../helpers/http.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Root ignores permission bits, so the failure is injected where the OS would raise it. */
function diskError(code: string): Error {
  return Object.assign(new Error(`${code}: injected`), { code });
}

describe('degraded store', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const cached = randomBytes(200_000);
  const fresh = randomBytes(300_000);
  let cachedDigest: string;
  let freshDigest: string;

  before(async () => {
    fake = await startFakeUpstream();
    cachedDigest = fake.addBlob('app/x', cached);
    freshDigest = fake.addBlob('app/x', fresh);
    sd = await startInProcess({ upstream: [fake.url] });
    assert.equal((await get(`${sd.url}/v2/app/x/blobs/${cachedDigest}`)).status, 200);
    // The response ends at verification; the commit (fsync, rename, row) follows: wait for it before breaking the store.
    await sd.proxy.blobs.fillSettled(cachedDigest as never);
    assert.equal(sd.meta.blobSize(cachedDigest as never), cached.length);
    // Both ways a fill gets a file: a resumable partial (lock file first) and a plain temp file.
    sd.store.claimPartial = async () => {
      throw diskError('EROFS');
    };
    sd.store.createTemp = async () => {
      throw diskError('EROFS');
    };
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('a miss on an unwritable store streams the verified bytes through and stores nothing', async () => {
    const r = await get(`${sd.url}/v2/app/x/blobs/${freshDigest}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-stevedore-cache'], 'pass-through');
    assert.equal(r.headers['content-length'], String(fresh.length));
    assert.equal(sha256(r.body), freshDigest);
    assert.equal(sd.meta.blobSize(freshDigest as never), undefined);
    assert.deepEqual(readdirSync(sd.store.paths.tmpDir), []);
    // While the store is refusing, later misses go straight to pass-through: each costs its own upstream GET.
    const before = fake.count('GET', freshDigest);
    const again = await get(`${sd.url}/v2/app/x/blobs/${freshDigest}`, { range: 'bytes=0-9' });
    assert.equal(again.status, 200, 'a Range is ignored on pass-through: the whole verified body');
    assert.equal(sha256(again.body), freshDigest);
    assert.equal(fake.count('GET', freshDigest), before + 1);
  });

  test('wrong bytes on pass-through never end cleanly', async () => {
    const other = randomBytes(100_000);
    const d = fake.addBlob('app/x', other);
    fake.setFault(d, { kind: 'wrong-bytes' });
    const r = await get(`${sd.url}/v2/app/x/blobs/${d}`);
    assert.ok(r.error !== undefined || r.body.length < other.length, 'the response must be cut short');
    assert.notEqual(sha256(r.body), d);
    fake.clearFault(d);
  });

  test('cached content keeps being served', async () => {
    const r = await get(`${sd.url}/v2/app/x/blobs/${cachedDigest}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-stevedore-cache'], 'hit');
    assert.ok(r.body.equals(cached));
  });

  test('a manifest whose metadata write fails is still served, verified, and not cached', async () => {
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: cachedDigest, size: cached.length },
        layers: [],
      }),
    );
    const digest = fake.addManifest('app/x', 'ro', body, OCI_MANIFEST);
    const original = sd.meta.putManifest.bind(sd.meta);
    sd.meta.putManifest = () => {
      throw Object.assign(new Error('attempt to write a readonly database'), { code: 'SQLITE_READONLY' });
    };
    try {
      const r = await get(`${sd.url}/v2/app/x/manifests/ro`, { accept: OCI_MANIFEST });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(body));
      assert.equal(r.headers['docker-content-digest'], digest);
      assert.equal(sd.meta.getManifest(digest as never), undefined);
    } finally {
      sd.meta.putManifest = original;
    }
  });

  test('metrics count pass-through outcomes', async () => {
    const text = await (await request(`${sd.url}/metrics`)).body.text();
    assert.match(text, /stevedore_cache_requests_total\{kind="blob",outcome="pass-through"\} [2-9]/);
  });
});
