// Corruption on disk: a byte flipped in cached blob files. A small blob (kept in memory once read) is re-hashed when
// it is loaded and fetched again; the scheduled scrub (config scrub:) finds the large one, removes it, logs and
// counts it, and the next pull fetches verified bytes again.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, sha256 } from '../helpers/http.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

describe('corruption on disk', () => {
  let fake: FakeUpstream;
  let sd: StevedoreProcess;
  const blobFile = (d: string): string => path.join(sd.dataDir, 'blobs', 'sha256', d.slice(7, 9), d.slice(7));

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startStevedore({ upstreams: [fake.url], config: { scrub: { every: '1s', rate: '200MB/s' } } });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('a flipped byte: small blobs are re-hashed on load, the scrub removes large ones; clients then get verified bytes', async () => {
    const small = randomBytes(10_000);
    const large = randomBytes(2 << 20);
    const ds = fake.addBlob('rot/x', small);
    const dl = fake.addBlob('rot/x', large);
    for (const d of [ds, dl]) {
      assert.equal(sha256((await get(`${sd.url}/v2/rot/x/blobs/${d}`)).body), d);
      await waitFor('the commit', async () => existsSync(blobFile(d)) || undefined, 10_000, 20);
    }
    flipByte(blobFile(ds), 5_000);
    flipByte(blobFile(dl), 1 << 20);
    fake.reset();

    const s = await get(`${sd.url}/v2/rot/x/blobs/${ds}`);
    assert.equal(s.status, 200);
    assert.equal(sha256(s.body), ds, 'never the corrupt small blob');

    await waitFor(
      'the scrub to remove the corrupt large blob',
      async () => (/^stevedore_scrub_corrupt_total [1-9]/m.test((await get(`${sd.url}/metrics`)).body.toString()) && !existsSync(blobFile(dl))) || undefined,
      20_000,
      100,
    );
    assert.match(sd.logs(), /scrub: cached blob does not match its digest: removed/);
    assert.match(sd.logs(), /scrub pass finished/);
    const l = await get(`${sd.url}/v2/rot/x/blobs/${dl}`);
    assert.equal(l.status, 200);
    assert.equal(l.headers['x-stevedore-cache'], 'miss');
    assert.equal(sha256(l.body), dl);
    assert.equal(fake.count('GET', `/blobs/${dl}`), 1, 'fetched again from upstream');
  });
});
