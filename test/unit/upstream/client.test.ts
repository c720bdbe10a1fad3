// Unit tests of src/upstream/client.ts: blob downloads have their own connection pool, so a manifest is answered
// while blob GETs hold every connection the blob pool has; a token realm's answer is bounded in bytes and time; an
// upstream's Retry-After is clamped before we wait it out.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { UpstreamClient, UpstreamError } from '../../../src/upstream/client.ts';
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

describe("the token answer of a hostile realm (on the upstream's own origin) is bounded", () => {
  const up = (): Upstream => ({ name: fake.host, url: fake.url, libraryPrefix: false });
  const tokenFetches = (): number => fake.count('GET', '/token');
  afterEach(() => fake.requireAuth(undefined));

  test('a token longer than the cap is refused: an UpstreamError, and the token is never sent upstream', async () => {
    fake.addManifest('tk/big', 'v1', manifest(), OCI_MANIFEST);
    fake.requireAuth({ service: 'fake', tokenBody: { kind: 'size', bytes: 1 << 20 } });
    fake.reset();
    await assert.rejects(client.send(up(), 'tk/big', '/manifests/v1', 'GET', { accept: OCI_MANIFEST }), (e: unknown) => {
      assert.ok(e instanceof UpstreamError, String(e));
      assert.match(e.message, /token/);
      return true;
    });
    assert.equal(tokenFetches(), 1, 'a refused answer is not fetched again');
    assert.equal(fake.count('GET', '/v2/tk/big/manifests/v1'), 1, 'only the first, unauthenticated request');
  });

  test('an endless token body: read no further than the cap (plus what socket buffers hold), then an UpstreamError', async () => {
    fake.requireAuth({ service: 'fake', tokenBody: { kind: 'endless', maxBytes: 128 << 20 } });
    fake.reset();
    await assert.rejects(client.send(up(), 'tk/endless', '/manifests/v1', 'GET', { accept: OCI_MANIFEST }), UpstreamError);
    // The fake writes only as fast as we read: what it could write is the cap plus the kernel's socket buffers.
    assert.ok(fake.bytesSent('/token') < 16 << 20, `${fake.bytesSent('/token')} bytes of token sent`);
  });

  test('a token body trickled byte by byte ends at the deadline (connect + headers timeouts) with an UpstreamError', { timeout: 30_000 }, async () => {
    // bodyIdle (20 s) never fires: a byte comes every 50 ms.
    const tight = new UpstreamClient({ timeouts: { connect: 500, headers: 1_000, bodyIdle: 20_000 }, retries: 0 });
    try {
      fake.requireAuth({ service: 'fake', tokenBody: { kind: 'trickle', tickMs: 50 } });
      fake.reset();
      await assert.rejects(tight.send(up(), 'tk/slow', '/manifests/v1', 'GET', { accept: OCI_MANIFEST }), (e: unknown) => {
        assert.ok(e instanceof UpstreamError, String(e));
        assert.match(e.message, /token/);
        return true;
      });
      assert.ok(fake.bytesSent('/token') > 10, 'the trickle had begun');
    } finally {
      await tight.close();
    }
  });
});

test('a Retry-After below 1 s (negative, zero) counts as 1 s: not waited out under a shorter maxRetryAfterMs, no immediate retry', async () => {
  const up: Upstream = { name: fake.host, url: fake.url, libraryPrefix: false };
  const patient = new UpstreamClient({ timeouts: { connect: 5_000, headers: 20_000, bodyIdle: 20_000 }, retries: 1, maxRetryAfterMs: 500 });
  try {
    for (const [i, retryAfter] of ['-5', '0', '-0.5'].entries()) {
      fake.addManifest(`ra/x${i}`, 'v1', manifest(), OCI_MANIFEST);
      fake.setFault(`/v2/ra/x${i}/manifests/v1`, { kind: 'status', status: 429, retryAfter, times: 1 });
      const res = await patient.send(up, `ra/x${i}`, '/manifests/v1', 'GET', { accept: OCI_MANIFEST });
      await res.body.dump();
      assert.equal(res.status, 429, `Retry-After ${retryAfter}: handed back, not retried at once`);
      assert.equal(fake.count('GET', `/v2/ra/x${i}/manifests/v1`), 1, retryAfter);
    }
  } finally {
    await patient.close();
  }
});
