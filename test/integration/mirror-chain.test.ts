// Two stevedores chained (node tier -> site tier) in front of the real registry: ?ns= at the site, exact origin counts, origin fallback.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { pushMultiLayer, sha256, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { nodeTierConfig, startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, sleep, type TempDir } from '../helpers/tmp.ts';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

/** GETs the origin registry answered for this image's blobs and manifests, by path. */
function originGets(reg: Registry, img: PushedImage): Record<string, number> {
  const count: Record<string, number> = {};
  for (const r of reg.requests()) {
    if (r.method !== 'GET' || !r.uri.startsWith(`/v2/${img.repo}/`)) continue;
    const key = r.uri.replace(/\?.*$/, '');
    count[key] = (count[key] ?? 0) + 1;
  }
  return count;
}

/** What a pull costs the origin when every blob and the tag are fetched exactly once. */
function oncePerObject(img: PushedImage, tag: string): Record<string, number> {
  const out: Record<string, number> = { [`/v2/${img.repo}/manifests/${tag}`]: 1, [`/v2/${img.repo}/blobs/${img.configDigest}`]: 1 };
  for (const l of img.layers) out[`/v2/${img.repo}/blobs/${l.digest}`] = 1;
  return out;
}

function assertLayout(dir: string, img: PushedImage): void {
  const names = readdirSync(path.join(dir, 'blobs', 'sha256'));
  for (const n of names) assert.equal(sha256(readFileSync(path.join(dir, 'blobs', 'sha256', n))), `sha256:${n}`);
  for (const d of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) assert.ok(names.includes(d.slice(7)), `layout lacks ${d}`);
}

describe('mirror chain: node-tier stevedore -> site-tier stevedore -> real registry', () => {
  let reg: Registry;
  let site: StevedoreProcess;
  let node: StevedoreProcess;
  let tmp: TempDir;
  let first: PushedImage;
  let second: PushedImage;

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    first = await pushMultiLayer(reg.url, 'chain/first', 'v1', 3);
    second = await pushMultiLayer(reg.url, 'chain/second', 'v1', 3);
    // The site tier knows the registry by its host name, like any upstream; the node tier asks it with ?ns=.
    site = await startStevedore({ upstreams: [reg.url], tagTtl: 300 });
    node = await startStevedore({ tagTtl: 300, config: nodeTierConfig(reg, site.url) });
  });
  after(async () => {
    await Promise.allSettled([node?.stop(), site?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('a pull through the node tier goes via the site tier (?ns=): byte-exact, each object fetched from the origin once', async () => {
    reg.clearRequests();
    const dir = path.join(tmp.path, 'first');
    const r = await copyToOciDir(`docker://${node.host}/chain/first:v1`, dir);
    assert.equal(r.code, 0, r.stderr);
    assertLayout(dir, first);
    await sleep(300); // the registry logs just after responding
    assert.deepEqual(originGets(reg, first), oncePerObject(first, 'v1'));
    // The site tier served them: it holds every blob, and it was asked with the registry's name.
    const atSite = await request(`${site.url}/v2/chain/first/blobs/${first.layers[0]!.digest}?ns=${reg.host}`);
    assert.equal(atSite.statusCode, 200);
    assert.equal(atSite.headers['x-stevedore-cache'], 'hit');
    await atSite.body.dump();
    assert.match(site.logs(), new RegExp(`"upstream":"${reg.host.replace(/\./g, '\\.')}"`));
  });

  test('a second node tier in front of the same site tier costs the origin nothing', async () => {
    const node2 = await startStevedore({
      tagTtl: 300,
      config: {
        builtinUpstreams: false,
        defaultUpstream: reg.host,
        upstreams: { [reg.host]: { endpoints: [{ url: site.url, mirror: true }, { url: reg.url }] } },
      },
    });
    try {
      reg.clearRequests();
      const dir = path.join(tmp.path, 'first-again');
      const r = await copyToOciDir(`docker://${node2.host}/chain/first:v1`, dir);
      assert.equal(r.code, 0, r.stderr);
      assertLayout(dir, first);
      await sleep(300);
      assert.deepEqual(originGets(reg, first), {}, 'every blob and the tag came from the site tier');
    } finally {
      await node2.stop();
    }
  });

  test('with the site tier stopped, the node tier pulls straight from the origin (each object once)', async () => {
    await site.stop();
    reg.clearRequests();
    const dir = path.join(tmp.path, 'second');
    const r = await copyToOciDir(`docker://${node.host}/chain/second:v1`, dir);
    assert.equal(r.code, 0, r.stderr);
    assertLayout(dir, second);
    await sleep(300);
    assert.deepEqual(originGets(reg, second), oncePerObject(second, 'v1'));
    // The site endpoint's circuit is open now; the origin's is closed.
    const ready = (await (await fetch(`${node.url}/readyz`)).json()) as { upstreams: { upstream: string; open: boolean }[] };
    const byName = Object.fromEntries(ready.upstreams.map((u) => [u.upstream, u.open]));
    assert.equal(byName[`${reg.host}@${site.host}`], true);
    assert.equal(byName[`${reg.host}@${reg.host}`], false);
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert.ok(metrics.includes(`stevedore_upstream_circuit_open{upstream="${reg.host}@${site.host}"} 1`), metrics);
    assert.ok(metrics.includes(`stevedore_upstream_circuit_open{upstream="${reg.host}@${reg.host}"} 0`));
  });

  test('check-config prints each endpoint (YAML usable as --config) with its secrets left out and named', async () => {
    const file = path.join(tmp.path, 'chain.yaml');
    writeFileSync(
      file,
      `upstreams:\n  docker.io:\n    endpoints:\n      - url: ${site.url}\n        mirror: true\n      - url: ${reg.url}\n        username: robot\n        password: s3cret-origin\n`,
    );
    const r = await runCommand(process.execPath, [path.resolve(import.meta.dirname, '../../dist/main.js'), 'check-config', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('s3cret-origin'));
    const printed = parseYaml(r.stdout) as { upstreams: Record<string, unknown> };
    assert.deepEqual(printed.upstreams['docker.io'], {
      endpoints: [
        { url: site.url, mirror: true },
        { url: reg.url, mirror: false, username: 'robot' },
      ],
    });
    assert.match(r.stdout, /^# Secrets not printed: upstreams\.docker\.io\.endpoints\.1\.password\.$/m);
  });
});
