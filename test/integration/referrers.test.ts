// The referrers API through stevedore with the real registry 2.8 (no referrers API): the referrers tag schema for real,
// the empty index, stale answers, and a cosign-style signature pulled by skopeo and containerd.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cosignSignature, pushReferrers, referrersTag, sbom, SPDX, type Artifact } from '../helpers/artifacts.ts';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.ts';
import { get, ociCode, OCI_INDEX } from '../helpers/http.ts';
import { pushImage, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { makeTempDir, type TempDir } from '../helpers/tmp.ts';

describe('referrers through stevedore, real registry without the referrers API', () => {
  let reg: Registry;
  /** Between stevedore and the registry: 2.8 does not log requests to routes it lacks, this proxy does. */
  let front: CountingProxy;
  let sd: InProcess;
  let tmp: TempDir;
  let img: PushedImage;
  let sig: Artifact;
  let doc: Artifact;
  let index: Buffer;
  let now = 1_800_000_000_000;
  const referrers = (d: string, q = ''): string => `${sd.url}/v2/sig/app/referrers/${d}${q}`;
  const upstreamFor = (part: string) => front.requests().filter((r) => r.path.includes(part));

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    img = await pushImage(reg.url, 'sig/app', 'v1', { layers: [{ seed: 31, sizeBytes: 4000 }], mediaTypes: 'oci' });
    const subject = { digest: img.manifestDigest, size: img.manifestBytes.length, mediaType: img.manifestMediaType };
    sig = cosignSignature(subject, `${reg.host}/sig/app`);
    doc = sbom(subject);
    index = await pushReferrers(reg.url, 'sig/app', subject, [sig, doc]);
    front = await startCountingProxy(reg.url);
    sd = await startInProcess({ upstream: [front.url, `registry.test=${front.url}`], tagTtl: '30', configObject: { retries: 0 } }, () => now);
  });
  after(async () => {
    await sd?.stop();
    await front?.stop();
    await reg?.destroy();
    await tmp?.cleanup();
  });

  test('the upstream has no referrers API (404): the referrers tag index is served byte-exact, then cached for the TTL', async () => {
    front.reset();
    const r = await get(referrers(img.manifestDigest));
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['content-type'], OCI_INDEX);
    assert.ok(r.body.equals(index), 'the index exactly as the client pushed it');
    assert.equal(r.headers['content-length'], String(index.length));
    assert.equal(r.headers['x-stevedore-referrers'], 'fallback-tag');
    assert.equal(r.headers['oci-filters-applied'], undefined);
    assert.deepEqual(
      upstreamFor(`/referrers/${img.manifestDigest}`).map((q) => q.status),
      [404],
      'asked the referrers API once',
    );
    assert.equal(upstreamFor(`/manifests/${referrersTag(img.manifestDigest)}`).length, 1, 'then the referrers tag');

    now += 10_000;
    front.reset();
    const again = await get(referrers(img.manifestDigest));
    assert.ok(again.body.equals(index));
    assert.equal(again.headers['x-stevedore-cache'], 'hit');
    assert.deepEqual(upstreamFor('/sig/app/'), [], 'inside the TTL: no upstream request');
  });

  test('?artifactType= on a fallback answer is filtered here and says so in OCI-Filters-Applied', async () => {
    const r = await get(referrers(img.manifestDigest, `?artifactType=${encodeURIComponent(SPDX)}`));
    assert.equal(r.status, 200);
    assert.equal(r.headers['oci-filters-applied'], 'artifactType');
    const j = JSON.parse(r.body.toString()) as { mediaType: string; manifests: { digest: string }[] };
    assert.equal(j.mediaType, OCI_INDEX);
    assert.deepEqual(
      j.manifests.map((m) => m.digest),
      [doc.digest],
    );
  });

  test('no referrers API and no referrers tag: an empty image index (200); a bad digest: 400', async () => {
    const other = await pushImage(reg.url, 'sig/app', 'v2', { layers: [{ seed: 32, sizeBytes: 1000 }], mediaTypes: 'oci' });
    const r = await get(referrers(other.manifestDigest));
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.headers['content-type'], OCI_INDEX);
    assert.deepEqual(JSON.parse(r.body.toString()), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    assert.equal(r.headers['x-stevedore-referrers'], 'empty');
    const bad = await get(referrers('sha256:abc'));
    assert.equal(bad.status, 400);
    assert.equal(ociCode(bad).code, 'DIGEST_INVALID');
  });

  test('artifact manifests and their blobs are served byte-exact; a cosign-style signature pulls with skopeo', async () => {
    const m = await get(`${sd.url}/v2/sig/app/manifests/${doc.digest}`);
    assert.equal(m.status, 200);
    assert.ok(m.body.equals(doc.bytes));
    for (const b of doc.blobs) assert.ok((await get(`${sd.url}/v2/sig/app/blobs/${b.digest}`)).body.equals(b.bytes));
    const dir = path.join(tmp.path, 'sig-oci');
    const r = await copyToOciDir(`docker://${new URL(sd.url).host}/sig/app@${sig.digest}`, dir);
    assert.equal(r.code, 0, r.stderr);
    for (const d of [sig.digest, ...sig.blobs.map((b) => b.digest)]) {
      const file = path.join(dir, 'blobs', 'sha256', d.slice(7));
      assert.ok(readFileSync(file).equals(d === sig.digest ? sig.bytes : sig.blobs.find((b) => b.digest === d)!.bytes), d);
    }
  });

  test('containerd fetches the signature artifact through stevedore (hosts.toml mirror)', async () => {
    let ctd: Containerd | undefined;
    try {
      ctd = await startContainerd();
      const hosts = path.join(tmp.path, 'hosts');
      writeHostsToml(hosts, 'registry.test', sd.url, { server: 'http://127.0.0.1:9' });
      const r = await ctd.pull(`registry.test/sig/app@${sig.digest}`, { hostsDir: hosts, unpack: false });
      assert.equal(r.code, 0, r.stderr);
      const content = await ctd.contentDigests();
      for (const d of [sig.digest, ...sig.blobs.map((b) => b.digest)]) assert.ok(content.includes(d), d);
    } finally {
      await ctd?.stop();
    }
  });

  test('upstream down: a cached list past its TTL is served stale with a Warning; nothing cached: 404', async () => {
    await get(referrers(img.manifestDigest));
    await reg.stop();
    try {
      now += 60_000;
      const r = await get(referrers(img.manifestDigest));
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(index));
      assert.equal(r.headers['x-stevedore-cache'], 'stale');
      assert.match(String(r.headers.warning), /^110 /);
      const none = await get(referrers(sig.digest));
      assert.equal(none.status, 404, none.body.toString());
    } finally {
      await reg.start();
    }
  });
});
