// Interrupted downloads are resumed with Range from the kept partial file (in a later fill, or after a restart).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';
import { get, sha256 } from '../helpers/http.ts';

describe('resumable downloads', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const blob = randomBytes(4 << 20);
  let digest: string;

  before(async () => {
    fake = await startFakeUpstream();
    digest = fake.addBlob('app/r', blob);
    // retries 0: one Range resume inside the fill, then it gives up and keeps what it has.
    sd = await startInProcess({ upstream: [fake.url], configObject: { retries: 0 } });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('a fill cut off twice fails cleanly, keeps its verified-so-far prefix, and the next fill resumes it', async () => {
    fake.setFault(digest, { kind: 'cut', afterBytes: 1 << 20, times: 2 });
    const first = await get(`${sd.url}/v2/app/r/blobs/${digest}`);
    assert.ok(first.error !== undefined || first.body.length < blob.length, 'never a clean end');
    await waitFor('fill settled', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 10);
    const partials = readdirSync(sd.store.paths.partialDir).filter((f) => !f.endsWith('.lock'));
    assert.equal(partials.length, 1, 'the partial download is kept');
    assert.equal(sd.meta.blobSize(digest as never), undefined, 'and nothing is in the cache');
    fake.reset();
    const second = await get(`${sd.url}/v2/app/r/blobs/${digest}`);
    assert.equal(second.status, 200);
    assert.equal(sha256(second.body), digest);
    const gets = fake.requests().filter((r) => r.method === 'GET' && r.path.includes(digest));
    assert.equal(gets.length, 1);
    assert.match(String(gets[0]!.headers.range), /^bytes=\d+-$/);
    const offset = Number(/bytes=(\d+)-/.exec(String(gets[0]!.headers.range))![1]);
    assert.ok(offset >= 2 << 20, `resumed from the kept ${offset} bytes, not from 0`);
    assert.equal(fake.bytesSent(digest), blob.length - offset, 'the second download fetched only the rest');
    await waitFor('the fill to commit', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 10);
    assert.equal(existsSync(sd.store.paths.partial(digest as never)), false, 'the partial became the cached blob');
  });

  test('a partial whose bytes are wrong is found out at the end and never served or kept', async () => {
    const other = randomBytes(3 << 20);
    const d = fake.addBlob('app/r', other);
    fake.setFault(d, { kind: 'cut', afterBytes: 1 << 20, times: 2 });
    await get(`${sd.url}/v2/app/r/blobs/${d}`);
    await waitFor('fill settled', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 10);
    fake.clearFault(d);
    // Corrupt the kept prefix on disk: the resumed download must fail verification.
    const { openSync, writeSync, closeSync } = await import('node:fs');
    const fd = openSync(sd.store.paths.partial(d as never), 'r+');
    writeSync(fd, Buffer.from('XXXX'), 0, 4, 10);
    closeSync(fd);
    const bad = await get(`${sd.url}/v2/app/r/blobs/${d}`);
    assert.ok(bad.error !== undefined || bad.body.length < other.length, 'never a clean end on wrong bytes');
    await waitFor('fill settled', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 10);
    assert.equal(existsSync(sd.store.paths.partial(d as never)), false, 'a partial that failed verification is deleted');
    const good = await get(`${sd.url}/v2/app/r/blobs/${d}`);
    assert.equal(sha256(good.body), d);
  });
});
