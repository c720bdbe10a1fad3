// skopeo pulls real images from the real distribution registry through stevedore: exact bytes, cache reuse, coalescing, upstream down.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { pushBigLayer, pushDockerManifestList, pushMultiLayer, pushOciIndex, sha256, type PushedImage, type PushedIndex } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir, inspectRaw } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, type TempDir } from '../helpers/tmp.ts';

const blobGets = (reg: Registry, digest?: string) =>
  reg.requests().filter((r) => r.method === 'GET' && r.uri.includes('/blobs/') && (!digest || r.uri.includes(digest)));

/** Every file under an OCI layout's blobs/ is named by the sha256 of its bytes. */
function assertLayoutIntact(dir: string, expected: string[]): void {
  const names = readdirSync(path.join(dir, 'blobs', 'sha256'));
  for (const n of names) assert.equal(sha256(readFileSync(path.join(dir, 'blobs', 'sha256', n))), `sha256:${n}`);
  for (const d of expected) assert.ok(names.includes(d.slice(7)), `layout lacks ${d}`);
}

describe('skopeo through stevedore, real registry upstream', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let idx: PushedIndex;
  let list: PushedIndex;
  let multi: PushedImage;
  let big: PushedImage;
  let alpine: PushedImage;

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    idx = await pushOciIndex(reg.url, 'test/index', 'v1');
    list = await pushDockerManifestList(reg.url, 'test/list', 'v1');
    multi = await pushMultiLayer(reg.url, 'test/multi', 'v1', 4);
    big = await pushBigLayer(reg.url, 'test/big', 'v1', 256);
    alpine = await pushMultiLayer(reg.url, 'library/alpine', '3', 1);
    // A bare URL is the default upstream; named ones are reached by ?ns= or a host path prefix.
    sd = await startStevedore({ upstreams: [reg.url, `registry.test=${reg.url}`, `docker.io=${reg.url}`], tagTtl: 300 });
  });

  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('an OCI index (amd64, arm64, zstd variant) is served byte-for-byte, children too', async () => {
    const raw = await inspectRaw(`docker://${sd.host}/test/index:v1`);
    assert.ok(raw.equals(idx.manifestBytes));
    for (const m of idx.manifests) assert.ok((await inspectRaw(`docker://${sd.host}/test/index@${m.manifestDigest}`)).equals(m.manifestBytes));
    const dir = path.join(tmp.path, 'index');
    const r = await copyToOciDir(`docker://${sd.host}/test/index:v1`, dir, { all: true });
    assert.equal(r.code, 0, r.stderr);
    assertLayoutIntact(dir, [idx.manifestDigest, ...idx.manifests.flatMap((m) => [m.manifestDigest, m.configDigest, ...m.layers.map((l) => l.digest)])]);
  });

  test('a Docker manifest list and a multi-layer image pull through with identical digests', async () => {
    assert.ok((await inspectRaw(`docker://${sd.host}/test/list:v1`)).equals(list.manifestBytes));
    const dir = path.join(tmp.path, 'list');
    // An OCI layout cannot hold Docker manifests unchanged (skopeo converts them): compare the layers.
    const lr = await copyToOciDir(`docker://${sd.host}/test/list:v1`, dir, { all: true });
    assert.equal(lr.code, 0, lr.stderr);
    assertLayoutIntact(
      dir,
      list.manifests.flatMap((m) => m.layers.map((l) => l.digest)),
    );
    const mdir = path.join(tmp.path, 'multi');
    const r = await copyToOciDir(`docker://${sd.host}/test/multi:v1`, mdir);
    assert.equal(r.code, 0, r.stderr);
    assertLayoutIntact(mdir, [multi.manifestDigest, multi.configDigest, ...multi.layers.map((l) => l.digest)]);
  });

  test('the second pull makes zero upstream requests for blobs or fresh tags', async () => {
    reg.clearRequests();
    const r = await copyToOciDir(`docker://${sd.host}/test/multi:v1`, path.join(tmp.path, 'multi-again'));
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 300)); // the registry logs just after responding
    assert.deepEqual(
      reg.requests().filter((q) => q.uri.startsWith('/v2/test/')),
      [],
    );
  });

  test('the three ways to name an upstream: default, host path prefix, ?ns=, with docker.io library/', async () => {
    assert.ok((await inspectRaw(`docker://${sd.host}/registry.test/test/multi:v1`)).equals(multi.manifestBytes));
    const accept = multi.manifestMediaType;
    const viaNs = await request(`${sd.url}/v2/test/multi/manifests/v1?ns=registry.test`, { headers: { accept } });
    assert.equal(viaNs.statusCode, 200);
    assert.ok(Buffer.from(await viaNs.body.arrayBuffer()).equals(multi.manifestBytes));
    const lib = await request(`${sd.url}/v2/alpine/manifests/3?ns=docker.io`, { headers: { accept } });
    assert.equal(lib.statusCode, 200);
    assert.equal(sha256(Buffer.from(await lib.body.arrayBuffer())), alpine.manifestDigest);
    assert.ok((await inspectRaw(`docker://${sd.host}/docker.io/alpine:3`)).equals(alpine.manifestBytes));
    const denied = await request(`${sd.url}/v2/alpine/manifests/3?ns=evil.example`);
    assert.equal(denied.statusCode, 403);
    assert.equal(((await denied.body.json()) as { errors: { code: string }[] }).errors[0]!.code, 'DENIED');
  });

  test('20 concurrent cold GETs of a 256 MiB blob: one upstream GET, every client gets the right bytes', async () => {
    const layer = big.layers[0]!;
    // Like a client: the manifest first, which links the layer to the repository.
    assert.ok((await inspectRaw(`docker://${sd.host}/test/big:v1`)).equals(big.manifestBytes));
    reg.clearRequests();
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await request(`${sd.url}/v2/test/big/blobs/${layer.digest}`);
        const h = createHash('sha256');
        let n = 0;
        for await (const chunk of res.body) {
          h.update(chunk as Buffer);
          n += (chunk as Buffer).length;
        }
        return { status: res.statusCode, digest: `sha256:${h.digest('hex')}`, n };
      }),
    );
    for (const r of results) assert.deepEqual(r, { status: 200, digest: layer.digest, n: layer.size });
    await reg.waitForRequest((q) => q.method === 'GET' && q.uri.includes(layer.digest));
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(blobGets(reg, layer.digest).length, 1);
    const again = await request(`${sd.url}/v2/test/big/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(again.headers['content-length'], String(layer.size));
  });

  test('with the upstream stopped, cached tags and digests still pull; uncached ones are a clean 404', async () => {
    await reg.stop();
    try {
      const r = await copyToOciDir(`docker://${sd.host}/test/multi:v1`, path.join(tmp.path, 'offline-tag'));
      assert.equal(r.code, 0, r.stderr);
      const r2 = await copyToOciDir(`docker://${sd.host}/test/index@${idx.manifests[1]!.manifestDigest}`, path.join(tmp.path, 'offline-digest'));
      assert.equal(r2.code, 0, r2.stderr);
      const miss = await request(`${sd.url}/v2/test/never/manifests/v1`);
      assert.equal(miss.statusCode, 404);
      const body = (await miss.body.json()) as { errors: { code: string; detail: { reason?: string } }[] };
      assert.equal(body.errors[0]!.code, 'MANIFEST_UNKNOWN');
      assert.match(String(body.errors[0]!.detail.reason), /unreachable|not cached/);
    } finally {
      await reg.start();
    }
  });
});

describe('tag freshness against the real registry', () => {
  let reg: Registry;
  let sd: StevedoreProcess;

  before(async () => {
    reg = await startRegistry();
    sd = await startStevedore({ upstreams: [reg.url], tagTtl: 1 });
  });
  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy()]);
  });

  test('a re-pushed tag appears after the TTL; past it, an unreachable upstream gives the stale one, marked', async () => {
    const a = await pushMultiLayer(reg.url, 'test/retag', 'v1', 1, { seed: 1 });
    assert.ok((await inspectRaw(`docker://${sd.host}/test/retag:v1`)).equals(a.manifestBytes));
    const b = await pushMultiLayer(reg.url, 'test/retag', 'v1', 1, { seed: 2 });
    assert.notEqual(a.manifestDigest, b.manifestDigest);
    assert.ok((await inspectRaw(`docker://${sd.host}/test/retag:v1`)).equals(a.manifestBytes), 'inside the TTL the cached tag is served');
    await new Promise((res) => setTimeout(res, 1200));
    assert.ok((await inspectRaw(`docker://${sd.host}/test/retag:v1`)).equals(b.manifestBytes), 'after the TTL the new digest is served');
    await reg.stop();
    try {
      await new Promise((res) => setTimeout(res, 1200));
      const res = await request(`${sd.url}/v2/test/retag/manifests/v1`, { headers: { accept: b.manifestMediaType } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['x-stevedore-cache'], 'stale');
      assert.match(String(res.headers.warning), /^110 /);
      assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(b.manifestBytes));
    } finally {
      await reg.start();
    }
  });
});
