// The referrers API through stevedore when the upstream serves it (fake upstream): exact bytes, filters passed through or
// applied here, cached like a tag (fresh, revalidated, re-pointed, stale on 503).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { COSIGN_SIG, cosignSignature, referrersIndex, referrersTag, sbom, SPDX } from '../helpers/artifacts.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, manifest, OCI_INDEX, OCI_MANIFEST, ociCode, sha256 } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

describe('referrers API served by the upstream (fake upstream)', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  let now = 1_800_000_000_000;

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], tagTtl: '30', configObject: { retries: 0 } }, () => now);
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });

  function subject(repo: string) {
    const bytes = manifest();
    const digest = fake.addManifest(repo, sha256(bytes), bytes, OCI_MANIFEST);
    return { digest, size: bytes.length, mediaType: OCI_MANIFEST };
  }

  test('bytes exactly as upstream sent them; no referrers tag is asked; fresh for the TTL, then revalidated', async () => {
    const s = subject('api/a');
    const list = referrersIndex([cosignSignature(s, 'x/api/a'), sbom(s)]);
    fake.setReferrers('api/a', s.digest, list);
    const path = `/v2/api/a/referrers/${s.digest}`;
    const r = await get(`${sd.url}${path}`);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(list));
    assert.equal(r.headers['content-type'], OCI_INDEX);
    assert.equal(r.headers['x-stevedore-referrers'], 'api');
    assert.equal(r.headers['x-stevedore-cache'], 'miss');
    assert.equal(fake.count('GET', path), 1);
    assert.equal(fake.count('*', referrersTag(s.digest)), 0);

    now += 10_000;
    assert.equal((await get(`${sd.url}${path}`)).headers['x-stevedore-cache'], 'hit');
    assert.equal(fake.count('GET', path), 1, 'inside the TTL: not asked');

    now += 25_000;
    const re = await get(`${sd.url}${path}`);
    assert.ok(re.body.equals(list));
    assert.equal(re.headers['x-stevedore-cache'], 'revalidated');
    assert.equal(fake.count('GET', path), 2);

    // A new artifact pushed upstream: the next answer past the TTL has it.
    const more = referrersIndex([cosignSignature(s, 'x/api/a'), sbom(s), cosignSignature(s, 'y/api/a')]);
    fake.setReferrers('api/a', s.digest, more);
    now += 31_000;
    const moved = await get(`${sd.url}${path}`);
    assert.ok(moved.body.equals(more));
    assert.equal(moved.headers['x-stevedore-cache'], 'miss');

    fake.setFault(path, { kind: 'status', status: 503 });
    now += 31_000;
    const stale = await get(`${sd.url}${path}`);
    fake.clearFault(path);
    assert.equal(stale.status, 200);
    assert.ok(stale.body.equals(more));
    assert.equal(stale.headers['x-stevedore-cache'], 'stale');
    assert.match(String(stale.headers.warning), /^110 /);
  });

  test('OCI-Filters-Applied from the upstream is passed through with its bytes; an unfiltered answer is filtered here', async () => {
    const s = subject('api/f');
    const sig = cosignSignature(s, 'x/api/f');
    fake.setReferrers('api/f', s.digest, referrersIndex([sig, sbom(s)]), { filters: true });
    const q = `?artifactType=${encodeURIComponent(COSIGN_SIG)}`;
    const byUpstream = await get(`${sd.url}/v2/api/f/referrers/${s.digest}${q}`);
    assert.equal(byUpstream.headers['oci-filters-applied'], 'artifactType');
    assert.ok(byUpstream.body.equals(Buffer.from(JSON.stringify({ ...JSON.parse(referrersIndex([sig, sbom(s)]).toString()), manifests: [sig.descriptor] }))));
    assert.equal(fake.count('GET', `/v2/api/f/referrers/${s.digest}${q}`), 1, 'the filter was sent upstream');

    const t = subject('api/g');
    const doc = sbom(t);
    fake.setReferrers('api/g', t.digest, referrersIndex([cosignSignature(t, 'x/api/g'), doc]));
    const here = await get(`${sd.url}/v2/api/g/referrers/${t.digest}?artifactType=${encodeURIComponent(SPDX)}`);
    assert.equal(here.status, 200);
    assert.equal(here.headers['oci-filters-applied'], 'artifactType');
    assert.deepEqual((JSON.parse(here.body.toString()) as { manifests: unknown[] }).manifests, [doc.descriptor]);
    // The unfiltered list is its own cache entry, byte-exact.
    const all = await get(`${sd.url}/v2/api/g/referrers/${t.digest}`);
    assert.equal(all.headers['oci-filters-applied'], undefined);
    assert.ok(all.body.equals(referrersIndex([cosignSignature(t, 'x/api/g'), doc])));
  });

  test('a list the upstream paginates (Link rel="next") is served whole: every page fetched, descriptors merged', async () => {
    const s = subject('api/p');
    const arts = [cosignSignature(s, 'a'), cosignSignature(s, 'b'), sbom(s), cosignSignature(s, 'c'), cosignSignature(s, 'd')];
    fake.setReferrers('api/p', s.digest, referrersIndex(arts), { pageSize: 2 });
    const r = await get(`${sd.url}/v2/api/p/referrers/${s.digest}`);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers.link, undefined);
    const j = JSON.parse(r.body.toString()) as { mediaType: string; manifests: { digest: string }[] };
    assert.equal(j.mediaType, OCI_INDEX);
    assert.deepEqual(
      j.manifests.map((m) => m.digest),
      arts.map((a) => a.digest),
    );
    assert.equal(fake.count('GET', `/v2/api/p/referrers/${s.digest}`), 3);
  });

  test('upstream answers that are not usable referrers lists are 502 UNAVAILABLE (never a 500, never a client error)', async () => {
    const s = subject('api/bad');
    const sig = cosignSignature(s, 'x/api/bad');
    const index = (rest: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, ...rest }));
    const cases: [string, Buffer[]][] = [
      ['page 2 has "manifests": {}', [referrersIndex([sig]), index({ manifests: {} })]],
      ['one page whose "manifests" is not an array', [index({ manifests: 'x' })]],
      ['a descriptor without a digest', [index({ manifests: [{ mediaType: OCI_MANIFEST, size: 1 }] })]],
      ['5 MiB', [index({ manifests: [], annotations: { pad: 'a'.repeat(5 << 20) } })]],
      ['not JSON', [Buffer.from('not json')]],
      ['page 2 not JSON', [referrersIndex([sig]), Buffer.from('<html>')]],
      ['17 pages', Array.from({ length: 17 }, () => referrersIndex([sig]))],
    ];
    for (const [what, pages] of cases) {
      fake.setReferrers('api/bad', s.digest, Buffer.alloc(0), { pages });
      now += 60_000;
      const r = await get(`${sd.url}/v2/api/bad/referrers/${s.digest}`);
      assert.equal(r.status, 502, `${what}: ${r.status} ${r.body.toString().slice(0, 300)}`);
      assert.equal(ociCode(r).code, 'UNAVAILABLE', what);
    }
  });

  test('a page without "manifests" (or null) adds nothing: the pages merge into one valid index', async () => {
    const s = subject('api/none');
    const a = cosignSignature(s, 'a');
    const b = sbom(s);
    const index = (rest: Record<string, unknown>): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, ...rest }));
    fake.setReferrers('api/none', s.digest, Buffer.alloc(0), { pages: [index({}), referrersIndex([a]), index({ manifests: null }), referrersIndex([b])] });
    const r = await get(`${sd.url}/v2/api/none/referrers/${s.digest}`);
    assert.equal(r.status, 200, r.body.toString());
    const j = JSON.parse(r.body.toString()) as { manifests: { digest: string }[] };
    assert.deepEqual(
      j.manifests.map((m) => m.digest),
      [a.digest, b.digest],
    );
  });

  test('a cached list is served stale (Warning 110) when the upstream then answers something unusable', async () => {
    const s = subject('api/st');
    const list = referrersIndex([cosignSignature(s, 'x/api/st')]);
    fake.setReferrers('api/st', s.digest, list);
    const path = `/v2/api/st/referrers/${s.digest}`;
    assert.ok((await get(`${sd.url}${path}`)).body.equals(list));
    fake.setReferrers('api/st', s.digest, Buffer.alloc(0), { pages: [Buffer.from('not json')] });
    now += 60_000;
    const stale = await get(`${sd.url}${path}`);
    assert.equal(stale.status, 200, stale.body.toString());
    assert.ok(stale.body.equals(list));
    assert.equal(stale.headers['x-stevedore-cache'], 'stale');
    assert.match(String(stale.headers.warning), /^110 /);
  });

  test('an upstream 401/403 is DENIED and an upstream 400 a 502, not an empty list', async () => {
    const s = subject('api/e');
    const path = `/v2/api/e/referrers/${s.digest}`;
    fake.setFault(path, { kind: 'status', status: 400, body: JSON.stringify({ errors: [{ code: 'DIGEST_INVALID', message: 'nope' }] }) });
    const r = await get(`${sd.url}${path}`);
    fake.clearFault(path);
    assert.equal(r.status, 502, r.body.toString());
    fake.setFault(path, { kind: 'status', status: 403 });
    const d = await get(`${sd.url}${path}`);
    fake.clearFault(path);
    assert.equal(d.status, 403);
  });
});
