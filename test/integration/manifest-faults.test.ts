// Manifest fault injection against the fake upstream: lying digests and media types are errors and never stored.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, manifest, OCI_INDEX, OCI_MANIFEST, ociCode, sha256, type Got } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

describe('manifest faults', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  const url = (repo: string, ref: string): string => `${sd.url}/v2/${repo}/manifests/${ref}`;

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], configObject: { retries: 0 } });
  });
  after(async () => {
    await fake?.stop();
    await sd?.stop();
  });

  const assertError = (r: Got): void => {
    assert.notEqual(r.status, 200);
    assert.notEqual(r.status, 500);
    assert.ok(r.status >= 400, String(r.status));
    assert.ok(ociCode(r).code);
  };

  // The upstream is at fault: 502 UNAVAILABLE, as for any unusable upstream answer (it was 503 "service unavailable").
  const assertUpstreamFault = (r: Got): void => {
    assertError(r);
    assert.equal(r.status, 502, r.body.toString());
    assert.equal(ociCode(r).code, 'UNAVAILABLE');
    assert.match(String((ociCode(r).detail as { reason?: string }).reason), /digest does not match/);
  };

  test('body whose sha256 is not the requested digest: 502, nothing stored', async () => {
    const body = manifest();
    const lie = sha256(randomBytes(32));
    fake.addManifest('l/x', lie, body, OCI_MANIFEST, { digest: lie });
    assertUpstreamFault(await get(url('l/x', lie)));
    assert.equal(sd.meta.getManifest(lie as never), undefined);
    assert.equal(sd.meta.getManifest(sha256(body) as never), undefined);
  });

  test('by tag, Docker-Content-Digest that does not match the body: 502, nothing stored', async () => {
    const body = manifest();
    const lie = sha256(randomBytes(32));
    fake.addManifest('l/y', 'v1', body, OCI_MANIFEST, { digest: lie });
    assertUpstreamFault(await get(url('l/y', 'v1')));
    assert.equal(sd.meta.getManifest(lie as never), undefined);
    assert.equal(sd.meta.getManifest(sha256(body) as never), undefined);
    assert.equal(sd.meta.getTag(fake.host, 'l/y', 'v1'), undefined);
  });

  test('body mediaType disagreeing with Content-Type: 502 (the upstream is at fault), not stored', async () => {
    const body = manifest(OCI_INDEX);
    const d = fake.addManifest('l/z', 'v1', body, OCI_MANIFEST);
    for (const ref of ['v1', d]) {
      const r = await get(url('l/z', ref));
      assertError(r);
      assert.equal(r.status, 502, `${ref}: ${r.status}`);
      assert.match(String((ociCode(r).detail as { reason?: string }).reason), /upstream sent an invalid manifest/);
    }
    assert.equal(sd.meta.getManifest(d as never), undefined);
    assert.equal(sd.meta.getTag(fake.host, 'l/z', 'v1'), undefined);
  });
});
