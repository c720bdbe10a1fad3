// Self-test proving the test helpers work: real registry, image pushes, skopeo, containerd and the fake upstream.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import {
  makeLayerFile,
  pushBigLayer,
  pushDockerManifestList,
  pushForeignImage,
  pushMultiLayer,
  pushOciIndex,
  sha256,
  type PushedImage,
  type PushedIndex,
} from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir, inspectRaw } from '../helpers/skopeo.ts';
import { makeTempDir, runCommand, type TempDir } from '../helpers/tmp.ts';

describe('test helpers', () => {
  let reg: Registry;
  let ctd: Containerd;
  let fake: FakeUpstream;
  let tmp: TempDir;
  let idx: PushedIndex;
  let list: PushedIndex;
  let multi: PushedImage;

  before(async () => {
    tmp = makeTempDir();
    [reg, ctd, fake] = await Promise.all([startRegistry(), startContainerd(), startFakeUpstream()]);
    idx = await pushOciIndex(reg.url, 'test/index', 'v1');
    list = await pushDockerManifestList(reg.url, 'test/list', 'v1');
    multi = await pushMultiLayer(reg.url, 'test/multi', 'v1', 5);
  });

  after(async () => {
    await Promise.allSettled([reg?.destroy(), ctd?.stop(), fake?.stop()]);
    await tmp?.cleanup();
  });

  test('skopeo inspect --raw returns exactly the pushed manifest bytes', async () => {
    for (const [ref, pushed] of [
      ['test/index:v1', idx],
      ['test/list:v1', list],
      ['test/multi:v1', multi],
      [`test/index@${idx.manifests[1]!.manifestDigest}`, idx.manifests[1]!],
    ] as const) {
      const raw = await inspectRaw(`docker://${reg.host}/${ref}`);
      assert.equal(sha256(raw), pushed.manifestDigest, ref);
      assert.ok(raw.equals(pushed.manifestBytes), ref);
    }
    const parsed = JSON.parse(idx.manifestBytes.toString()) as { manifests: { annotations?: Record<string, string> }[] };
    assert.equal(parsed.manifests.length, 3);
    assert.equal(parsed.manifests[2]?.annotations?.['io.containerd.image.compression'], 'zstd');
    assert.match(list.manifestMediaType, /manifest\.list\.v2/);
  });

  test('skopeo copies to an OCI dir and the registry log shows the blob GETs', async () => {
    const dir = path.join(tmp.path, 'oci-multi');
    reg.clearRequests();
    const r = await copyToOciDir(`docker://${reg.host}/test/multi:v1`, dir);
    assert.equal(r.code, 0, r.stderr);
    for (const l of multi.layers) assert.ok(existsSync(path.join(dir, 'blobs', 'sha256', l.digest.slice(7))), l.digest);
    for (const d of [multi.configDigest, ...multi.layers.map((l) => l.digest)]) {
      await reg.waitForRequest((q) => q.method === 'GET' && q.uri === `/v2/test/multi/blobs/${d}` && q.status === 200);
    }
    const blobGets = reg.requests().filter((q) => q.method === 'GET' && q.uri.includes('/blobs/sha256:'));
    assert.equal(blobGets.length, multi.layers.length + 1);

    const all = await copyToOciDir(`docker://${reg.host}/test/index:v1`, path.join(tmp.path, 'oci-index'), { all: true });
    assert.equal(all.code, 0, all.stderr);
  });

  test('registry restarts on the same port and storage', async () => {
    await reg.stop();
    await assert.rejects(request(`${reg.url}/v2/`));
    await reg.start();
    const res = await request(`${reg.url}/v2/test/multi/manifests/v1`, { method: 'HEAD', headers: { accept: multi.manifestMediaType } });
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['docker-content-digest'], multi.manifestDigest);
  });

  test('big layers stream from disk', async () => {
    const big = await pushBigLayer(reg.url, 'test/big', 'v1', 16);
    const layer = big.layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar');
    const res = await request(`${reg.url}/v2/test/big/blobs/${layer.digest}`, { method: 'HEAD' });
    await res.body.dump();
    assert.equal(Number(res.headers['content-length']), layer.size);
    assert.ok(layer.size > 16 * 1024 * 1024);
  });

  test('foreign layers are accepted by a registry started with allowForeignUrls', async () => {
    const reg2 = await startRegistry({ allowForeignUrls: true });
    try {
      const blob = await makeLayerFile(4242, 3000, 'gzip');
      for (const style of ['docker', 'oci'] as const) {
        const img = await pushForeignImage(reg2.url, 'test/foreign', style, { foreignBlobPath: blob.path, urls: ['https://example.invalid/blob'], style });
        assert.ok((await inspectRaw(`docker://${reg2.host}/test/foreign:${style}`)).equals(img.manifestBytes));
        const res = await request(`${reg2.url}/v2/test/foreign/blobs/${blob.digest}`, { method: 'HEAD' });
        await res.body.dump();
        assert.equal(res.statusCode, 404, 'the foreign blob must not be pushed');
      }
    } finally {
      await reg2.destroy();
    }
  });

  test('containerd pulls (and unpacks) directly from the registry', async () => {
    const hosts = path.join(tmp.path, 'hosts-direct');
    writeHostsToml(hosts, reg.host, reg.url);
    const r = await ctd.pull(`${reg.host}/test/multi:v1`, { hostsDir: hosts });
    assert.equal(r.code, 0, r.stderr);
    const digests = await ctd.contentDigests();
    for (const d of [multi.manifestDigest, multi.configDigest, ...multi.layers.map((l) => l.digest)]) assert.ok(digests.includes(d), d);
    const r2 = await ctd.pull(`${reg.host}/test/index:v1`, { hostsDir: hosts, platform: 'linux/amd64' });
    assert.equal(r2.code, 0, r2.stderr);
    assert.ok((await ctd.contentDigests()).includes(idx.manifests[0]!.layers[0]!.digest));
  });

  test('containerd sends ?ns=<registry> to a mirror (fake upstream as docker.io mirror)', async () => {
    const img = await pushMultiLayer(fake.url, 'library/busy', 'v1', 2); // the fake also accepts pushes
    fake.reset();
    const hosts = path.join(tmp.path, 'hosts-mirror');
    writeHostsToml(hosts, 'docker.io', fake.url);
    const r = await ctd.pull('docker.io/library/busy:v1', { hostsDir: hosts, unpack: false });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(fake.requests().length > 0);
    for (const q of fake.requests()) assert.match(q.path, /\?ns=docker\.io$/, q.path);
    assert.equal(fake.count('GET', `/blobs/${img.layers[1]!.digest}`), 1);
  });

  test('fake upstream serves blobs, ranges, and injected faults', async () => {
    const bytes = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) & 0xff));
    const d = fake.addBlob('f/x', bytes);
    const blobUrl = `${fake.url}/v2/f/x/blobs/${d}`;
    const get = async (headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> => {
      const res = await request(blobUrl, { headers });
      return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
    };
    const ok = await get();
    assert.equal(ok.status, 200);
    assert.ok(ok.body.equals(bytes));
    assert.equal(ok.headers['docker-content-digest'], d);
    assert.equal(ok.headers['content-length'], String(bytes.length));

    const part = await get({ range: 'bytes=1000-' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-99999/100000`);
    assert.ok(part.body.equals(bytes.subarray(1000)));

    fake.setFault(d, { kind: 'cut', afterBytes: 4096 });
    const cut = await request(blobUrl);
    assert.equal(cut.statusCode, 200);
    await assert.rejects(cut.body.arrayBuffer(), 'a cut must end the body early');
    assert.ok((await get()).body.equals(bytes), 'after `times` cuts the blob is served normally');

    fake.setFault(d, { kind: 'wrong-bytes' });
    const wrong = await get();
    assert.equal(wrong.body.length, bytes.length);
    assert.notEqual(sha256(wrong.body), d);
    fake.clearFault(d);

    fake.setFault(`/v2/f/x/blobs/${d}`, { kind: 'status', status: 503, retryAfter: 1, times: 1 });
    const unavailable = await get();
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.headers['retry-after'], '1');
    assert.equal((await get()).status, 200);

    fake.setFault(d, { kind: 'slow-headers', ms: 300 });
    const t0 = Date.now();
    await get();
    assert.ok(Date.now() - t0 >= 280);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 50_000, tickMs: 100 });
    const slow = await get();
    assert.ok(slow.body.equals(bytes));
    fake.clearFault(d);

    const missing = await request(`${fake.url}/v2/f/x/manifests/nope`);
    assert.equal(missing.statusCode, 404);
    const err = (await missing.body.json()) as { errors: { code: string }[] };
    assert.equal(err.errors[0]?.code, 'MANIFEST_UNKNOWN');
    assert.ok(fake.count('GET', `/blobs/${d}`) >= 8);
    const md = fake.addManifest('f/x', 'v1', multi.manifestBytes, multi.manifestMediaType);
    const byTag = await request(`${fake.url}/v2/f/x/manifests/v1`);
    assert.equal(byTag.headers['docker-content-digest'], md);
    assert.ok(Buffer.from(await byTag.body.arrayBuffer()).equals(multi.manifestBytes));
    assert.ok(existsSync(multi.layers[0]!.path!) && readFileSync(multi.layers[0]!.path!).length === multi.layers[0]!.size);
  });

  test("the helpers' STEVEDORE_*_BIN variables never reach a child (stevedore refuses unknown STEVEDORE_* variables)", async () => {
    const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
    process.env.STEVEDORE_SKOPEO_BIN = 'skopeo';
    try {
      const r = await runCommand(process.execPath, [MAIN, 'check-config']);
      assert.equal(r.code, 0, r.stderr);
    } finally {
      delete process.env.STEVEDORE_SKOPEO_BIN;
    }
  });
});
