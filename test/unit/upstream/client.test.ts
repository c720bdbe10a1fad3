// Unit tests of src/upstream/client.ts: blob downloads have their own connection pool, so a manifest is answered
// while blob GETs hold every connection the blob pool has.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { UpstreamClient } from '../../../src/upstream/client.ts';
import type { Upstream } from '../../../src/upstream/types.ts';
import { startFakeUpstream, type FakeUpstream } from '../../helpers/fake-upstream.ts';
import { manifest, OCI_MANIFEST } from '../../helpers/http.ts';

let fake: FakeUpstream;
let client: UpstreamClient;
before(async () => {
  fake = await startFakeUpstream();
  client = new UpstreamClient({ timeouts: { connect: 5_000, headers: 20_000, bodyIdle: 20_000 }, retries: 0, connections: { blobs: 2, other: 2 } });
});
after(async () => {
  await client.close();
  await fake.stop();
});

test('a manifest GET does not wait for blob downloads that hold every blob connection', async () => {
  const up: Upstream = { name: fake.host, url: fake.url, libraryPrefix: false };
  const blobs = [fake.addBlob('p/x', randomBytes(1 << 20)), fake.addBlob('p/x', randomBytes(1 << 20)), fake.addBlob('p/x', randomBytes(1 << 20))];
  for (const d of blobs) fake.setFault(d, { kind: 'hold' });
  const d = fake.addManifest('p/x', 'v1', manifest(), OCI_MANIFEST);
  // Three blob GETs on a pool of two: two connections held by the upstream, one request queued behind them.
  const pending = blobs.map((b) => client.send(up, 'p/x', `/blobs/${b}`, 'GET'));
  await new Promise<void>((resolve) => {
    const check = (): void => void (fake.count('GET', '/blobs/') >= 2 ? resolve() : setTimeout(check, 10));
    check();
  });
  assert.equal(fake.count('GET', '/blobs/'), 2, 'the blob pool is full');
  const res = await client.send(up, 'p/x', '/manifests/v1', 'GET', { accept: OCI_MANIFEST });
  assert.equal(res.status, 200);
  assert.equal(res.headers['docker-content-digest'], d);
  await res.body.dump();
  assert.equal(fake.count('GET', '/blobs/'), 2, 'the blobs were still held while the manifest was answered');
  fake.releaseHeld();
  for (const r of await Promise.all(pending.slice(0, 2))) {
    assert.equal(r.status, 200);
    await r.body.dump();
  }
  // The queued third one goes out once a blob connection is free.
  await new Promise<void>((resolve) => {
    const check = (): void => void (fake.count('GET', '/blobs/') >= 3 ? resolve() : setTimeout(check, 10));
    check();
  });
  fake.releaseHeld();
  const last = await pending[2]!;
  assert.equal(last.status, 200);
  await last.body.dump();
});
