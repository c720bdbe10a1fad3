// Faults that used to escape as a 500 or a client error: an upstream 206 with the wrong Content-Range, an upstream
// invalid manifest, and EMFILE/EIO reading a cached blob. Upstream faults are 502 with the reason; ours are 503.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, OCI_MANIFEST, ociCode, sha256 } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

describe('upstream and system faults are never a 500', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const blobUrl = (repo: string, d: string): string => `${sd.url}/v2/${repo}/blobs/${d}`;
  const reason = (r: Awaited<ReturnType<typeof get>>): string => String((ociCode(r).detail as { reason?: string } | null)?.reason);

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], configObject: { retries: 0 } });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  test('a 206 with a Content-Range that is not what was asked: 502 with the reason, nothing stored', async () => {
    const bytes = randomBytes(200_000);
    const d = fake.addBlob('r/x', bytes);
    fake.setFault(d, { kind: 'bad-content-range' });
    const r = await get(blobUrl('r/x', d));
    assert.equal(r.status, 502);
    assert.equal(ociCode(r).code, 'UNAVAILABLE');
    assert.match(reason(r), /Content-Range bytes 1-/);
    assert.equal(sd.meta.blobSize(d as never), undefined);
    fake.clearFault(d);
    const ok = await get(blobUrl('r/x', d));
    assert.equal(ok.status, 200);
    assert.equal(sha256(ok.body), d);
  });

  test('resuming a kept partial, the upstream answers the wrong range: 502, and the partial stays for later', async () => {
    const bytes = randomBytes(3 << 20);
    const d = fake.addBlob('r/y', bytes);
    fake.setFault(d, { kind: 'cut', afterBytes: 1 << 20, times: 2 });
    await get(blobUrl('r/y', d));
    await waitFor('fill settled', async () => sd.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 10);
    assert.ok(existsSync(sd.store.paths.partial(d as never)), 'a partial is kept');
    fake.setFault(d, { kind: 'bad-content-range' });
    const r = await get(blobUrl('r/y', d));
    assert.equal(r.status, 502);
    assert.match(reason(r), /from byte \d+ with 206 and Content-Range/);
    fake.clearFault(d);
    const ok = await get(blobUrl('r/y', d));
    assert.equal(ok.status, 200);
    assert.equal(sha256(ok.body), d);
  });

  test('an upstream manifest that is not a valid manifest: 502 with the reason, not 400 MANIFEST_INVALID', async () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { digest: 'nope' }, layers: [] }));
    const d = fake.addManifest('m/x', 'v1', body, OCI_MANIFEST);
    for (const ref of ['v1', d]) {
      const r = await get(`${sd.url}/v2/m/x/manifests/${ref}`);
      assert.equal(r.status, 502, ref);
      assert.equal(ociCode(r).code, 'UNAVAILABLE');
      assert.match(reason(r), /upstream sent an invalid manifest: .*invalid digest/);
    }
    assert.equal(sd.meta.getManifest(d as never), undefined);
  });

  test('EMFILE and EIO opening a cached blob: 503 with the reason and Retry-After, then served again', async () => {
    const bytes = randomBytes(1 << 20); // above the small-blob memory cache: every hit opens the file
    const d = fake.addBlob('h/x', bytes);
    assert.equal((await get(blobUrl('h/x', d))).status, 200);
    await waitFor('committed', async () => sd.meta.blobSize(d as never) !== undefined || undefined, 10_000, 10);
    const real = sd.store.openHandle.bind(sd.store);
    for (const code of ['EMFILE', 'EIO']) {
      sd.store.openHandle = async () => {
        throw Object.assign(new Error(`${code}: injected, open '${sd.store.paths.blob(d as never)}'`), { code, errno: -5, syscall: 'open' });
      };
      const r = await get(blobUrl('h/x', d));
      sd.store.openHandle = real;
      assert.equal(r.status, 503, code);
      assert.equal(r.headers['retry-after'], '1');
      assert.match(reason(r), new RegExp(code));
    }
    const ok = await get(blobUrl('h/x', d));
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['x-stevedore-cache'], 'hit');
    assert.equal(sha256(ok.body), d);
    assert.deepEqual(
      readdirSync(sd.store.paths.tmpDir).filter((f) => !f.startsWith('.')),
      [],
    );
  });
});
