// Node tier -> Debian's haproxy (the shipped deploy/haproxy/haproxy.cfg) -> three site replicas -> real registry.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.ts';
import { startHaproxy, type Haproxy } from '../helpers/haproxy.ts';
import { pushBigLayer, pushMultiLayer, seedOf, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { nodeTierConfig, startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { pacedRelay } from '../helpers/paced-relay.ts';
import { makeTempDir, sleep, waitFor, type TempDir } from '../helpers/tmp.ts';

const blobsOf = (img: PushedImage): string[] => [img.configDigest, ...img.layers.map((l) => l.digest)];
const stored = (sd: StevedoreProcess, digest: string): boolean => existsSync(path.join(sd.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));

describe('tiers: node stevedore -> haproxy (shipped config) -> 3 site replicas -> real registry', () => {
  let reg: Registry;
  let replicas: StevedoreProcess[];
  let lb: Haproxy;
  let node: StevedoreProcess;
  let ctd: Containerd;
  let tmp: TempDir;
  let big: PushedImage;
  let multi: PushedImage;
  let shared: PushedImage;
  let third: PushedImage;
  let ctrImage: PushedImage;

  const originBlobGets = (digest: string): number => reg.requests().filter((r) => r.method === 'GET' && r.uri.endsWith(`/blobs/${digest}`)).length;
  /** Which replicas hold a digest, once every commit has landed (a replica commits just after it verified). */
  const holders = async (digest: string): Promise<number[]> =>
    waitFor(`${digest} committed on a replica`, () => {
      const on = replicas.flatMap((r, i) => (stored(r, digest) ? [i] : []));
      return on.length > 0 ? on : undefined;
    });
  const nodeTier = (extra: Record<string, unknown> = {}) =>
    startStevedore({
      tagTtl: 300,
      config: { ...nodeTierConfig(reg, lb.url), ...extra },
    });

  before(async () => {
    tmp = makeTempDir();
    [reg, ctd] = await Promise.all([startRegistry(), startContainerd()]);
    big = await pushBigLayer(reg.url, 'tiers/big', 'v1', 128);
    multi = await pushMultiLayer(reg.url, 'tiers/multi', 'v1', 9);
    // The same layers under another repository: their digests hash to the same replicas.
    shared = await pushMultiLayer(reg.url, 'tiers/shared', 'v1', 9, { seed: seedOf('tiers/multi:v1') });
    third = await pushMultiLayer(reg.url, 'tiers/third', 'v1', 3);
    ctrImage = await pushMultiLayer(reg.url, 'tiers/ctr', 'v1', 3);
    replicas = await Promise.all([0, 1, 2].map(() => startStevedore({ upstreams: [reg.url], tagTtl: 300 })));
    lb = await startHaproxy(replicas.map((r) => r.host));
    node = await nodeTier();
  });
  after(async () => {
    await Promise.allSettled([node?.stop(), lb?.stop(), ctd?.stop(), ...(replicas ?? []).map((r) => r.stop()), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('20 concurrent cold GETs of a 128 MiB blob through the node tier: one origin download, right bytes for all', async () => {
    const layer = big.layers[0]!;
    const m = await request(`${node.url}/v2/tiers/big/manifests/v1`, { headers: { accept: big.manifestMediaType } });
    assert.equal(m.statusCode, 200);
    assert.ok(Buffer.from(await m.body.arrayBuffer()).equals(big.manifestBytes));
    reg.clearRequests();
    const digests = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await request(`${node.url}/v2/tiers/big/blobs/${layer.digest}`);
        assert.equal(res.statusCode, 200);
        const h = createHash('sha256');
        for await (const chunk of res.body) h.update(chunk as Buffer);
        return `sha256:${h.digest('hex')}`;
      }),
    );
    assert.deepEqual(new Set(digests), new Set([layer.digest]));
    await sleep(300);
    assert.equal(originBlobGets(layer.digest), 1);
    assert.equal((await holders(layer.digest)).length, 1, 'stored on exactly one replica');
  });

  test('skopeo pulls through the chain byte-exact; each blob fetched once and stored on one replica, whatever the repository', async () => {
    reg.clearRequests();
    const r = await copyToOciDir(`docker://${node.host}/tiers/multi:v1`, path.join(tmp.path, 'multi'));
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    for (const d of blobsOf(multi)) {
      assert.equal(originBlobGets(d), 1, d);
      assert.equal((await holders(d)).length, 1, `${d} on one replica`);
    }
    const spread = new Set(await Promise.all(multi.layers.map(async (l) => (await holders(l.digest))[0])));
    assert.ok(spread.size >= 2, `9 layers hashed to ${spread.size} replica(s)`);
    // The same layers under another repository: hashed on the digest, so the replica that holds each one serves
    // it (after confirming the repository upstream with a HEAD): no origin blob download.
    reg.clearRequests();
    const s = await copyToOciDir(`docker://${node.host}/tiers/shared:v1`, path.join(tmp.path, 'shared'));
    assert.equal(s.code, 0, s.stderr);
    await sleep(300);
    assert.deepEqual(
      shared.layers.map((l) => originBlobGets(l.digest)),
      shared.layers.map(() => 0),
    );
    // haproxy sent every request for one digest to one server.
    for (const l of multi.layers) {
      const servers = new Set(
        lb
          .requests()
          .filter((q) => q.uri.includes(`/blobs/${l.digest}`))
          .map((q) => q.server),
      );
      assert.equal(servers.size, 1, `${l.digest}: ${[...servers].join(', ')}`);
    }
  });

  test('containerd (hosts.toml mirror -> node tier) pulls and unpacks a cold image through the chain, each blob fetched once', async () => {
    const hostsDir = path.join(tmp.path, 'certs.d');
    writeHostsToml(hostsDir, reg.host, node.url, { server: 'http://127.0.0.1:9' });
    reg.clearRequests();
    const r = await ctd.pull(`${reg.host}/tiers/ctr:v1`, { hostsDir });
    assert.equal(r.code, 0, r.stderr);
    const content = await ctd.contentDigests();
    for (const d of [ctrImage.manifestDigest, ...blobsOf(ctrImage)]) assert.ok(content.includes(d), d);
    await sleep(300);
    for (const d of blobsOf(ctrImage)) {
      assert.equal(originBlobGets(d), 1, d);
      assert.equal((await holders(d)).length, 1, `${d} on one replica`);
    }
  });

  test('one replica killed mid-download: the download completes verified, pulls keep working, its share is fetched again once', async () => {
    const layer = big.layers[0]!;
    const victim = (await holders(layer.digest))[0]!;
    const share = blobsOf(multi).filter((d) => stored(replicas[victim]!, d));
    // A fresh node tier (empty cache) whose link to haproxy is paced, so the kill lands mid-body.
    const link = await pacedRelay(Number(new URL(lb.url).port), 40 * 1024 * 1024);
    const node2 = await nodeTier({ upstreams: { [reg.host]: { endpoints: [{ url: link.url, mirror: true }, { url: reg.url }] } } });
    try {
      const m = await request(`${node2.url}/v2/tiers/big/manifests/v1`, { headers: { accept: big.manifestMediaType } });
      await m.body.dump();
      reg.clearRequests();
      const res = await request(`${node2.url}/v2/tiers/big/blobs/${layer.digest}`);
      assert.equal(res.statusCode, 200);
      const h = createHash('sha256');
      let received = 0;
      let atKill: number | undefined;
      for await (const chunk of res.body) {
        h.update(chunk as Buffer);
        received += (chunk as Buffer).length;
        if (atKill === undefined && received >= 16 * 1024 * 1024) {
          atKill = received;
          await replicas[victim]!.kill9();
        }
      }
      assert.ok(atKill !== undefined && atKill < layer.size, 'the replica died while the blob was streaming');
      assert.equal(received, layer.size);
      assert.equal(`sha256:${h.digest('hex')}`, layer.digest);
      // haproxy sent the node tier's Range resume to another replica (redispatch), which filled it from the origin once.
      const resumed = lb.requests().filter((q) => q.uri.includes(`/blobs/${layer.digest}`) && q.status === 206);
      assert.ok(resumed.length > 0 && resumed.every((q) => q.server !== `site-${victim}`), JSON.stringify(resumed));
      await sleep(300);
      assert.equal(originBlobGets(layer.digest), 1);
      // A whole image through the same node tier: the dead replica's share is fetched once more, the rest not at all.
      reg.clearRequests();
      const pulls = await Promise.all([0, 1].map((i) => copyToOciDir(`docker://${node2.host}/tiers/multi:v1`, path.join(tmp.path, `after-kill-${i}`))));
      for (const p of pulls) assert.equal(p.code, 0, p.stderr);
      await sleep(300);
      for (const d of blobsOf(multi)) assert.equal(originBlobGets(d), share.includes(d) ? 1 : 0, `${d} (on the killed replica: ${share.includes(d)})`);
    } finally {
      await node2.stop();
      await link.close();
    }
  });

  test('the whole site tier stopped: the node tier falls back to the origin', async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    reg.clearRequests();
    const r = await copyToOciDir(`docker://${node.host}/tiers/third:v1`, path.join(tmp.path, 'third'));
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    for (const d of blobsOf(third)) assert.equal(originBlobGets(d), 1, d);
    // Cached at the node tier before: still served, no origin request.
    reg.clearRequests();
    const again = await copyToOciDir(`docker://${node.host}/tiers/multi:v1`, path.join(tmp.path, 'multi-again'));
    assert.equal(again.code, 0, again.stderr);
    await sleep(300);
    assert.equal(reg.requests().filter((q) => q.uri.includes('/blobs/')).length, 0);
  });
});
