// Trust boundary leaks, with the real registry behind htpasswd: cross-repository and cross-upstream links, redirect SSRF, realms.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { MT, pushBlob, pushManifest, sha256 } from '../helpers/images.ts';
import { basicAuth, startRegistry, type Registry } from '../helpers/registry.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { makeTempDir } from '../helpers/tmp.ts';

interface Got {
  status: number;
  body: Buffer;
  complete: boolean;
}

/** GET that never throws: a body cut short (a failed verification) comes back with complete=false. */
async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Got> {
  const res = await request(url, { method, headers, signal: AbortSignal.timeout(20_000) });
  const chunks: Buffer[] = [];
  let complete = true;
  try {
    for await (const c of res.body) chunks.push(c as Buffer);
  } catch {
    complete = false;
  }
  return { status: res.statusCode, body: Buffer.concat(chunks), complete };
}

const json = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));

/** Pushes config + one layer + manifest; returns the manifest digest. */
async function pushSimple(reg: string, repo: string, tag: string, layer: Buffer, extra: Record<string, unknown> = {}): Promise<string> {
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, repo });
  await pushBlob(reg, repo, sha256(config), config);
  await pushBlob(reg, repo, sha256(layer), layer);
  const m = json({
    schemaVersion: 2,
    mediaType: MT.ociManifest,
    config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
    layers: [{ mediaType: MT.ociGzip, digest: sha256(layer), size: layer.length }],
    ...extra,
  });
  return pushManifest(reg, repo, tag, m, MT.ociManifest);
}

describe('trust boundary', () => {
  let registry: Registry;
  let authed: string;
  let fake: FakeUpstream;
  let other: FakeUpstream;
  let sd: InProcess;
  const secret = randomBytes(4_000);
  const secretDigest = sha256(secret);
  let secretManifest: string;

  before(async () => {
    registry = await startRegistry({ users: { alice: 'alice-pw' }, allowForeignUrls: true });
    authed = `http://alice:alice-pw@${registry.host}`;
    [fake, other] = await Promise.all([startFakeUpstream(), startFakeUpstream()]);
    secretManifest = await pushSimple(authed, 'team-a/secret', 'v1', secret);
    // public/evil: an ordinary image whose manifest ALSO lists a foreign descriptor carrying the secret layer's
    // digest (the registry never checks foreign layers), and an artifact whose subject is the secret manifest.
    const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } });
    await pushBlob(authed, 'public/evil', sha256(config), config);
    const evil = json({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MT.ociForeign, digest: secretDigest, size: secret.length, urls: ['https://layers.invalid/x'] }],
    });
    await pushManifest(authed, 'public/evil', 'v1', evil, MT.ociManifest);
    await pushSimple(authed, 'public/evil', 'ref', randomBytes(100), {
      subject: { mediaType: MT.ociManifest, digest: secretManifest, size: 1 },
    });
    const data = (await makeTempDir('stevedore-trust-')).path;
    sd = await startInProcess({
      data,
      upstream: [registry.url, `${fake.host}=${fake.url}`],
      configObject: { retries: 0, upstreams: { [registry.host]: { url: registry.url, username: 'alice', password: 'alice-pw' } } },
    });
    // An authorised pull of the secret fills the cache.
    const m = await get(`${sd.url}/v2/team-a/secret/manifests/v1`, { accept: MT.ociManifest });
    assert.equal(m.status, 200);
    const b = await get(`${sd.url}/v2/team-a/secret/blobs/${secretDigest}`);
    assert.equal(b.status, 200);
    assert.ok(b.body.equals(secret));
  });
  after(async () => {
    await sd?.stop();
    await Promise.allSettled([registry?.destroy(), fake?.stop(), other?.stop()]);
  });

  test('cross-repository: a foreign descriptor in public/evil does not make the secret layer servable there', async () => {
    const direct = await get(`${registry.url}/v2/public/evil/blobs/${secretDigest}`, basicAuth('alice', 'alice-pw'));
    assert.equal(direct.status, 404, 'the registry does not hold it in public/evil');
    const m = await get(`${sd.url}/v2/public/evil/manifests/v1`, { accept: MT.ociManifest });
    assert.equal(m.status, 200);
    for (const method of ['HEAD', 'GET'] as const) {
      const r = await get(`${sd.url}/v2/public/evil/blobs/${secretDigest}`, {}, method);
      assert.notEqual(r.status, 200, `${method}: ${r.status}`);
      assert.ok(!r.body.includes(secret.subarray(0, 64)), `${method} leaked the secret bytes`);
    }
  });

  test('cross-repository: a subject descriptor does not make the secret manifest servable in public/evil', async () => {
    const r0 = await get(`${sd.url}/v2/public/evil/manifests/ref`, { accept: MT.ociManifest });
    assert.equal(r0.status, 200);
    const direct = await get(`${registry.url}/v2/public/evil/manifests/${secretManifest}`, { ...basicAuth('alice', 'alice-pw'), accept: MT.ociManifest });
    assert.equal(direct.status, 404);
    const r = await get(`${sd.url}/v2/public/evil/manifests/${secretManifest}`, { accept: MT.ociManifest });
    assert.equal(r.status, 404, r.body.toString());
  });

  test('cross-upstream: another upstream listing the digest, or answering HEAD 200 for it, does not get the cached bytes', async () => {
    // Upstream B's manifest references the secret digest as an ordinary layer; B does not hold it.
    const config = json({ b: 1 });
    fake.addBlob('other/x', config);
    const m = json({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: MT.ociConfig, digest: sha256(config), size: config.length },
      layers: [{ mediaType: MT.ociGzip, digest: secretDigest, size: secret.length }],
    });
    fake.addManifest('other/x', 'v1', m, MT.ociManifest);
    assert.equal((await get(`${sd.url}/v2/${fake.host}/other/x/manifests/v1`, { accept: MT.ociManifest })).status, 200);
    const viaManifest = await get(`${sd.url}/v2/${fake.host}/other/x/blobs/${secretDigest}`);
    assert.equal(viaManifest.status, 404, 'B does not have it');
    // B now claims it (HEAD 200 with the right size) but holds other bytes.
    const { path: dir } = await makeTempDir('stevedore-trust-b-');
    const file = `${dir}/fake`;
    (await import('node:fs')).writeFileSync(file, randomBytes(secret.length));
    fake.addBlobFile('other/y', file, secretDigest);
    for (const method of ['HEAD', 'GET'] as const) {
      const r = await get(`${sd.url}/v2/${fake.host}/other/y/blobs/${secretDigest}`, {}, method);
      assert.ok(!(r.status === 200 && r.complete && method === 'GET'), `${method}: a complete 200`);
      assert.ok(!r.body.includes(secret.subarray(0, 64)), `${method} leaked the secret bytes`);
    }
    assert.ok(fake.count('GET', `/v2/other/y/blobs/${secretDigest}`) >= 1, 'B had to deliver the bytes itself');
  });

  test('SSRF: an upstream redirect to a loopback address on another port is not followed', async () => {
    const bytes = randomBytes(88);
    const d = fake.addBlob('ssrf/x', bytes);
    other.addBlob('internal/x', bytes);
    other.reset();
    for (const status of [302, 307]) {
      fake.setFault(d, { kind: 'redirect', status, location: `http://127.0.0.1:${new URL(other.url).port}/v2/internal/x/blobs/${d}` });
      const r = await get(`${sd.url}/v2/${fake.host}/ssrf/x/blobs/${d}`);
      assert.notEqual(r.status, 200, `${status}: ${r.status}`);
      assert.equal(r.status < 500 || r.status === 502 || r.status === 503, true, `${status}: not a crash: ${r.status}`);
      fake.clearFault(d);
    }
    assert.equal(other.requests().length, 0, 'the internal address was never contacted');
  });

  test('a token realm on the same IP but another port never receives the upstream credentials', async () => {
    const up = await startFakeUpstream();
    const s = await startInProcess({
      upstream: [up.url],
      configObject: { retries: 0, upstreams: { [up.host]: { url: up.url, username: 'bob', password: 'bob-secret' } } },
    });
    try {
      up.requireAuth({ service: 'x', realm: `http://127.0.0.1:${new URL(other.url).port}/token` });
      other.reset();
      const r = await get(`${s.url}/v2/realm/x/manifests/v1`);
      assert.ok(r.status >= 400 && r.status < 500, String(r.status));
      assert.equal(other.requests().length, 0, 'the other port was not contacted');
    } finally {
      await s.stop();
      await up.stop();
    }
  });
});
