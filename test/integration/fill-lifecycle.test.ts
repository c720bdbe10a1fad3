// Fill lifecycle against a slow fake upstream: a fill nobody reads any more is cancelled after the grace period
// (its partial kept and resumed later), fills are capped globally and per upstream with a queue, and manifests
// and tags are answered while blob downloads hold every fill slot.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, manifest, OCI_MANIFEST, sha256 } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

describe('fill lifecycle', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const blobUrl = (repo: string, d: string): string => `${sd.url}/v2/${repo}/blobs/${d}`;

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], configObject: { retries: 1, fills: { idleGrace: 1, maxConcurrent: 3, maxPerUpstream: 2 } } });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('a fill whose only client left is cancelled after the grace period; the partial is kept and resumed', async () => {
    const bytes = randomBytes(4 << 20);
    const d = fake.addBlob('gone/x', bytes);
    // ~1.3 MB/s: the whole blob would take about 3 s.
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 50 });
    const ac = new AbortController();
    const res = await request(blobUrl('gone/x', d), { signal: ac.signal });
    assert.equal(res.statusCode, 200);
    let got = 0;
    for await (const c of res.body) {
      got += (c as Buffer).length;
      if (got >= 256 << 10) break; // the client goes away
    }
    ac.abort();
    await waitFor('the fill to be cancelled', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 15_000, 20);
    const sent = fake.bytesSent(d);
    assert.ok(sent < bytes.length, `the download stopped (${sent} of ${bytes.length} bytes)`);
    assert.equal(sd.meta.blobSize(d as never), undefined, 'nothing cached');
    const partial = sd.store.paths.partial(d as never);
    assert.ok(existsSync(partial) && statSync(partial).size > 0, 'the partial is kept');
    const kept = statSync(partial).size;

    fake.clearFault(d);
    fake.reset();
    const again = await get(blobUrl('gone/x', d));
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), d);
    const gets = fake.requests().filter((r) => r.method === 'GET' && r.path.includes(d));
    assert.equal(gets.length, 1);
    assert.equal(gets[0]!.headers.range, `bytes=${kept}-`, 'resumed where the cancelled fill stopped');
  });

  test('a fill with a reader left runs to the end', async () => {
    const bytes = randomBytes(2 << 20);
    const d = fake.addBlob('stay/x', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 50 });
    const leaver = new AbortController();
    const first = await request(blobUrl('stay/x', d), { signal: leaver.signal });
    const stayer = get(blobUrl('stay/x', d));
    await waitFor('the second reader', async () => fake.bytesSent(d) > 0 || undefined, 10_000, 10);
    leaver.abort();
    await first.body.dump().catch(() => undefined);
    const r = await stayer;
    assert.equal(sha256(r.body), d);
    assert.equal(fake.count('GET', d), 1);
  });

  test('a queued fill whose clients all left is never started', async () => {
    // 2 per upstream: two slow downloads hold the slots, three more requests queue, and their clients leave.
    const slow = { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 40 } as const;
    const running = [0, 1].map(() => fake.addBlob('wait/x', randomBytes(1 << 20)));
    const queued = [0, 1, 2].map(() => fake.addBlob('wait/x', randomBytes(1 << 20)));
    for (const d of running) fake.setFault(d, slow);
    const pulls = running.map((d) => get(blobUrl('wait/x', d)));
    await waitFor('two downloads running', async () => sd.proxy.blobs.fillsInFlight === 2 || undefined, 10_000, 10);
    const acs = queued.map(() => new AbortController());
    const gone = queued.map((d, i) => request(blobUrl('wait/x', d), { signal: acs[i]!.signal }).catch(() => undefined));
    await waitFor('three queued', async () => sd.proxy.blobs.fillsQueued === 3 || undefined, 10_000, 10);
    for (const a of acs) a.abort();
    await Promise.all(gone);
    for (const [i, r] of (await Promise.all(pulls)).entries()) assert.equal(sha256(r.body), running[i]);
    await waitFor('the queue to drain', async () => (sd.proxy.blobs.fillsQueued === 0 && sd.proxy.blobs.fillsInFlight === 0) || undefined, 10_000, 10);
    for (const d of queued) assert.equal(fake.count('GET', d), 0, 'never asked of the upstream');
    // A later request for one of them is served normally.
    const again = await get(blobUrl('wait/x', queued[0]!));
    assert.equal(sha256(again.body), queued[0]);
  });

  test('fills are capped (3 at once, 2 per upstream) and queue; manifests and tags are answered meanwhile', async () => {
    const other = await startFakeUpstream();
    try {
      // The second upstream is reached through its host name as path prefix.
      await sd.stop();
      sd = await startInProcess({
        upstream: [fake.url, `${other.host}=${other.url}`],
        configObject: { retries: 1, fills: { idleGrace: 30, maxConcurrent: 3, maxPerUpstream: 2 } },
      });
      const slow = { kind: 'slow-body', bytesPerTick: 32 << 10, tickMs: 40 } as const;
      const blobs: { url: string; digest: string; fake: FakeUpstream }[] = [];
      for (let i = 0; i < 4; i++) {
        const d = fake.addBlob('q/a', randomBytes(1 << 20));
        fake.setFault(d, slow);
        blobs.push({ url: blobUrl('q/a', d), digest: d, fake });
      }
      for (let i = 0; i < 2; i++) {
        const d = other.addBlob('q/b', randomBytes(1 << 20));
        other.setFault(d, slow);
        blobs.push({ url: blobUrl(`${other.host}/q/b`, d), digest: d, fake: other });
      }
      const tagged = fake.addManifest('q/m', 'v1', manifest(), OCI_MANIFEST);
      fake.reset();
      other.reset();
      let maxInFlight = 0;
      let maxPerA = 0;
      let queuedSeen = 0;
      const inflight = (f: FakeUpstream) => blobs.filter((b) => b.fake === f && f.bytesSent(b.digest) > 0 && f.bytesSent(b.digest) < 1 << 20).length;
      let done = false;
      const watch = (async () => {
        while (!done) {
          maxInFlight = Math.max(maxInFlight, sd.proxy.blobs.fillsInFlight);
          maxPerA = Math.max(maxPerA, inflight(fake));
          queuedSeen = Math.max(queuedSeen, sd.proxy.blobs.fillsQueued);
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      const pulls = blobs.map((b) => get(b.url));
      await waitFor('fills running', async () => sd.proxy.blobs.fillsInFlight >= 3 || undefined, 10_000, 10);
      // While every fill slot is taken by a slow download: a manifest and a tag list are answered at once.
      const m = await get(`${sd.url}/v2/q/m/manifests/v1`, { accept: OCI_MANIFEST });
      assert.equal(m.status, 200);
      assert.equal(sha256(m.body), tagged);
      const t = await get(`${sd.url}/v2/q/m/tags/list`);
      assert.equal(t.status, 200);
      assert.ok(sd.proxy.blobs.fillsInFlight > 0, 'the blob downloads were still running');
      const results = await Promise.all(pulls);
      done = true;
      await watch;
      for (const [i, r] of results.entries()) assert.equal(sha256(r.body), blobs[i]!.digest);
      assert.ok(maxInFlight <= 3, `at most 3 fills at once (saw ${maxInFlight})`);
      assert.ok(maxPerA <= 2, `at most 2 downloads from one upstream at once (saw ${maxPerA})`);
      assert.ok(queuedSeen >= 1, 'the rest waited in the queue');
      assert.equal(fake.count('GET', '/blobs/'), 4, 'one upstream GET per blob');
      assert.equal(other.count('GET', '/blobs/'), 2);
    } finally {
      await other.stop();
    }
  });
});
