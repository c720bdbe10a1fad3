// Foreign / non-distributable layers through stevedore: real registry upstream, real nginx foreign hosts, the CLI.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { stringify } from 'yaml';
import { startContainerd, writeHostsToml } from '../helpers/containerd.ts';
import { makeLayerFile, MT, pushForeignImage, sha256, type PushedImage } from '../helpers/images.ts';
import { startNginx, type Nginx } from '../helpers/nginx.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir, skopeo } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, waitFor, type TempDir } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const TOKEN = 'test-admin-token-0123456789';
const ACCEPT = [MT.ociManifest, MT.dockerManifest].join(', ');
type Case = 'redirectDocker' | 'redirectOci' | 'fetchDocker' | 'fetchOci' | 'stream' | 'tampered' | 'deniedHost' | 'localhost' | 'hop' | 'down' | 'gone';
const CASES: Case[] = ['redirectDocker', 'redirectOci', 'fetchDocker', 'fetchOci', 'stream', 'tampered', 'deniedHost', 'localhost', 'hop', 'down', 'gone'];

interface Layer {
  digest: string;
  size: number;
  file: string;
  url: string;
  image: PushedImage;
  repo: string;
}

async function getBlob(base: string, repo: string, digest: string, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(`${base}/v2/${repo}/blobs/${digest}`, { method, headersTimeout: 30_000, bodyTimeout: 30_000 });
  let body = Buffer.alloc(0);
  let error: Error | undefined;
  try {
    body = Buffer.from(await res.body.arrayBuffer());
  } catch (e) {
    error = e as Error;
  }
  return {
    status: res.statusCode,
    headers: res.headers,
    body,
    error,
    json: () => JSON.parse(body.toString()) as { errors: { code: string; detail: Record<string, unknown> }[] },
  };
}

describe('foreign layers through stevedore (registry upstream, nginx foreign hosts)', () => {
  let reg: Registry;
  let A: Nginx; // the allowed foreign host
  let B: Nginx; // a host no rule allows (and the target of a redirect from A)
  let C: Nginx; // a host that goes down
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let cfgFile: string;
  const L = {} as Record<Case, Layer>;

  const cli = async (...args: string[]) =>
    runCommand(process.execPath, [MAIN, 'foreign', ...args, '--data', sd.dataDir, '--config', cfgFile], { timeoutMs: 60_000 });
  const show = async (digest: string) => {
    const r = await cli('show', digest, '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { status: string; candidates: { url: string; health: { failures: number } }[] };
  };
  const pullManifest = async (repo: string) => {
    const res = await request(`${sd.url}/v2/${repo}/manifests/v1`, { headers: { accept: ACCEPT } });
    assert.equal(res.statusCode, 200);
    return Buffer.from(await res.body.arrayBuffer());
  };
  const cached = (digest: string) => existsSync(path.join(sd.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7)));

  before(async () => {
    tmp = makeTempDir('stevedore-foreign-');
    reg = await startRegistry({ allowForeignUrls: true });
    B = await startNginx();
    C = await startNginx();
    A = await startNginx({ extra: `location /hop/ { rewrite ^/hop/(.*)$ http://127.0.0.1:${B.port}/blobs/$1 redirect; }` });
    const urlOf: Record<Case, (d: string) => string> = {
      redirectDocker: (d) => `${A.url}/redirect/${d}`,
      redirectOci: (d) => `${A.url}/redirect/${d}`,
      fetchDocker: (d) => `${A.url}/fetch/${d}`,
      fetchOci: (d) => `${A.url}/fetch/${d}`,
      stream: (d) => `${A.url}/stream/${d}`,
      tampered: (d) => `${A.url}/fetch/bad/${d}`,
      deniedHost: (d) => `${B.url}/blobs/${d}`,
      localhost: (d) => `http://localhost:${B.port}/blobs/${d}`,
      hop: (d) => `${A.url}/hop/${d}`,
      down: (d) => `${C.url}/blobs/${d}`,
      gone: (d) => `${A.url}/gone/${d}`,
    };
    for (const [i, c] of CASES.entries()) {
      const f = await makeLayerFile(7100 + i, 150_000 + i * 1_000);
      const url = urlOf[c](f.digest);
      const repo = `foreign/${c.toLowerCase()}`;
      const image = await pushForeignImage(reg.url, repo, 'v1', {
        foreignBlobPath: f.path,
        urls: [url],
        style: c.endsWith('Oci') ? 'oci' : 'docker',
        seed: 7200 + i,
      });
      L[c] = { digest: f.digest, size: f.size, file: f.path, url, image, repo };
      // Every host would serve the right bytes if asked: a request that reaches it is visible in its access log.
      for (const h of [A, B, C]) h.put(`/blobs/${f.digest}`, f.path);
      if (c !== 'gone') A.put(new URL(url).pathname, f.path);
    }
    // Same size, one byte flipped in the middle: only the digest can tell.
    const bad = readFileSync(L.tampered.file);
    bad.writeUInt8(bad.readUInt8(bad.length >> 1) ^ 0xff, bad.length >> 1);
    A.put(`/fetch/bad/${L.tampered.digest}`, bad);
    A.put(`/fetch/good/${L.tampered.digest}`, L.tampered.file);
    const local = ['127.0.0.1/32'];
    cfgFile = path.join(tmp.path, 'config.yaml');
    writeFileSync(
      cfgFile,
      stringify({
        foreign: {
          rules: [
            { match: `http://127.0.0.1:${A.port}/redirect/*`, action: 'redirect' },
            { match: `http://127.0.0.1:${A.port}/stream/*`, action: 'fetch', cache: false, allowPrivate: local },
            { regex: `^http://127\\.0\\.0\\.1:${A.port}/(fetch|hop|gone|mirror)/`, action: 'fetch', allowPrivate: local },
            // Matches by name, but localhost resolves to loopback and this rule allows no private range.
            { match: `localhost:${B.port}`, action: 'fetch' },
            { match: `http://127.0.0.1:${C.port}/*`, action: 'fetch', allowPrivate: local },
          ],
        },
      }),
    );
    sd = await startStevedore({ upstreams: [reg.url], extraArgs: ['--config', cfgFile], env: { STEVEDORE_ADMIN_TOKEN: TOKEN } });
  });

  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy(), A?.destroy(), B?.destroy(), C?.destroy()]);
    await tmp?.cleanup();
  });

  for (const c of ['redirectDocker', 'redirectOci'] as const) {
    test(`${c}: manifest byte-exact, HEAD from metadata, GET 302 to the URL, the foreign host never contacted`, async () => {
      const l = L[c];
      assert.ok((await pullManifest(l.repo)).equals(l.image.manifestBytes));
      const head = await getBlob(sd.url, l.repo, l.digest, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], String(l.size));
      assert.equal(head.headers['docker-content-digest'], l.digest);
      const get = await getBlob(sd.url, l.repo, l.digest);
      assert.equal(get.status, 302);
      assert.equal(get.headers.location, l.url);
      // The ordinary layer still comes from the registry.
      const normal = await getBlob(sd.url, l.repo, l.image.layers[0]!.digest);
      assert.equal(normal.status, 200);
      assert.equal(sha256(normal.body), l.image.layers[0]!.digest);
      assert.equal(A.count(l.digest), 0);
      assert.equal((await show(l.digest)).status, 'redirectable');
    });
  }

  for (const c of ['fetchDocker', 'fetchOci'] as const) {
    test(`${c}: fetched, verified, cached; the second pull makes zero requests to the foreign host`, async () => {
      const l = L[c];
      await pullManifest(l.repo);
      assert.equal((await getBlob(sd.url, l.repo, l.digest, 'HEAD')).headers['content-length'], String(l.size));
      const first = await getBlob(sd.url, l.repo, l.digest);
      assert.equal(first.status, 200);
      assert.equal(first.error, undefined);
      assert.equal(sha256(first.body), l.digest);
      await waitFor('the access log line', () => A.count(l.digest) === 1, 5_000, 20);
      const second = await getBlob(sd.url, l.repo, l.digest);
      assert.equal(second.status, 200);
      assert.ok(second.body.equals(first.body));
      // Readers are released at verification; the commit (fsync + rename) follows.
      await waitFor('the commit into the CAS', () => cached(l.digest), 5_000, 20);
      assert.equal(A.count(l.digest), 1);
      assert.equal((await show(l.digest)).status, 'cached');
    });
  }

  test('cache: false streams verified bytes through without storing them', async () => {
    const l = L.stream;
    await pullManifest(l.repo);
    for (let i = 1; i <= 2; i++) {
      const r = await getBlob(sd.url, l.repo, l.digest);
      assert.equal(r.status, 200);
      assert.equal(sha256(r.body), l.digest);
      await waitFor('the access log line', () => A.count(l.digest) === i, 5_000, 20);
    }
    assert.equal(cached(l.digest), false);
    assert.equal((await show(l.digest)).status, 'fetchable');
  });

  test('tampered bytes: never a clean 200, never cached, URL unhealthy; a good mirror added with the CLI serves it', async () => {
    const l = L.tampered;
    await pullManifest(l.repo);
    const bad = await getBlob(sd.url, l.repo, l.digest);
    assert.ok(bad.status !== 200 || bad.error !== undefined, 'wrong bytes must not end cleanly');
    assert.ok(bad.body.length < l.size);
    assert.equal(cached(l.digest), false);
    const before = await show(l.digest);
    assert.equal(before.status, 'unavailable');
    assert.ok(before.candidates.find((x) => x.url === l.url)!.health.failures >= 1);
    const good = `${A.url}/fetch/good/${l.digest}`;
    const add = await cli('mirror', 'add', l.digest, good);
    assert.equal(add.code, 0, add.stderr);
    const after = await show(l.digest);
    assert.deepEqual(
      after.candidates.map((x) => x.url),
      [good, l.url],
    );
    const ok = await getBlob(sd.url, l.repo, l.digest);
    assert.equal(ok.status, 200);
    assert.equal(sha256(ok.body), l.digest);
    await waitFor('the commit into the CAS', () => cached(l.digest), 5_000, 20);
    assert.equal(A.count(`/fetch/bad/${l.digest}`), 1);
  });

  const assertClearError = async (l: Layer, policy: string, error: RegExp) => {
    await pullManifest(l.repo);
    for (const method of ['GET', 'HEAD'] as const) {
      const r = await getBlob(sd.url, l.repo, l.digest, method);
      assert.equal(r.status, 404);
      if (method === 'HEAD') continue;
      const e = r.json().errors[0]!;
      assert.equal(e.code, 'BLOB_UNKNOWN');
      assert.equal(e.detail.reason, 'foreign layer');
      assert.equal(e.detail.policy, policy);
      assert.deepEqual(e.detail.urls, [l.url]);
      const tried = e.detail.tried as { url: string; error: string }[];
      assert.equal(tried[0]!.url, l.url);
      assert.match(tried[0]!.error, error);
    }
  };

  test('a URL on a host no rule allows: 404 BLOB_UNKNOWN with the reason, and no request reaches that host', async () => {
    await assertClearError(L.deniedHost, 'deny', /no foreign\.rules entry matches/);
    assert.equal(B.count(L.deniedHost.digest), 0);
    assert.equal((await show(L.deniedHost.digest)).status, 'denied');
  });

  test('a rule that matches a name resolving to 127.0.0.1 without allowPrivate: refused before connecting', async () => {
    await assertClearError(L.localhost, 'fetch', /refused: localhost resolves to .*loopback/);
    assert.equal(B.count(L.localhost.digest), 0);
  });

  test('a redirect from an allowed host to a denied one: the hop is refused, the denied host sees nothing', async () => {
    await assertClearError(L.hop, 'fetch', new RegExp(`refused: .*after a redirect to http://127\\.0\\.0\\.1:${B.port}/blobs/`));
    assert.ok(A.count(`/hop/${L.hop.digest}`) >= 1);
    assert.equal(B.count(L.hop.digest), 0);
  });

  test('foreign host down: clear error with the tried URL; after `foreign fetch` an air-gapped run serves it', async () => {
    const l = L.down;
    await C.stop();
    await assertClearError(l, 'fetch', /ECONNREFUSED|connect/);
    assert.equal((await show(l.digest)).status, 'unavailable');
    await C.start();
    const pre = await cli('fetch', l.digest);
    assert.equal(pre.code, 0, pre.stderr);
    assert.equal(C.count(l.digest), 1);
    await C.stop();
    const r = await getBlob(sd.url, l.repo, l.digest);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), l.digest);
    assert.equal(C.count(l.digest), 1);
  });

  test('skopeo through stevedore: OCI layout keeps the foreign reference; dir: fetches urls itself, never the mirror', async () => {
    const l = L.fetchOci;
    const mirrorGets = () =>
      sd
        .logs()
        .split('\n')
        .filter((x) => x.includes('"request"') && x.includes(`/blobs/${l.digest}`)).length;
    const [hostBefore, mirrorBefore] = [A.count(l.digest), mirrorGets()];
    const dir = path.join(tmp.path, 'layout');
    const r = await copyToOciDir(`docker://${sd.host}/${l.repo}:v1`, dir);
    assert.equal(r.code, 0, r.stderr);
    const blobs = readdirSync(path.join(dir, 'blobs', 'sha256')).map((n) => `sha256:${n}`);
    for (const d of [l.image.manifestDigest, l.image.configDigest, l.image.layers[0]!.digest]) assert.ok(blobs.includes(d), `layout lacks ${d}`);
    assert.ok(readFileSync(path.join(dir, 'blobs', 'sha256', l.image.manifestDigest.slice(7))).equals(l.image.manifestBytes));
    // The OCI layout accepts foreign URLs, so skopeo copies the reference, not the layer: nobody is asked for it.
    assert.equal(blobs.includes(l.digest), false);
    assert.deepEqual([A.count(l.digest), mirrorGets()], [hostBefore, mirrorBefore]);
    // A destination that needs the bytes: skopeo GETs the manifest's url itself and never asks the mirror (README).
    const out = path.join(tmp.path, 'dir');
    const d = await skopeo(['copy', '--src-tls-verify=false', `docker://${sd.host}/${l.repo}:v1`, `dir:${out}`]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(sha256(readFileSync(path.join(out, l.digest.slice(7)))), l.digest);
    await waitFor('the access log line', () => A.count(l.digest) === hostBefore + 1, 5_000, 20);
    assert.equal(mirrorGets(), mirrorBefore);
  });

  test('containerd (hosts.toml mirror): a url answering 404 sends the pull to stevedore, served from an operator mirror', async () => {
    const l = L.gone;
    A.put(`/mirror/${l.digest}`, l.file);
    const add = await cli('mirror', 'add', l.digest, `${A.url}/mirror/${l.digest}`);
    assert.equal(add.code, 0, add.stderr);
    const ctd = await startContainerd();
    try {
      const hosts = path.join(tmp.path, 'certs.d');
      writeHostsToml(hosts, reg.host, sd.url, { server: 'http://127.0.0.1:9' });
      const r = await ctd.pull(`${reg.host}/${l.repo}:v1`, { hostsDir: hosts, platform: 'linux/amd64' });
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await ctd.contentDigests()).includes(l.digest));
    } finally {
      await ctd.stop();
    }
    // containerd asked the url itself first (404), then the mirror; stevedore fetched from the operator mirror once.
    assert.ok(A.count(`/gone/${l.digest}`) >= 1);
    await waitFor('the access log line', () => A.count(`/mirror/${l.digest}`) === 1, 5_000, 20);
    assert.equal((await show(l.digest)).status, 'cached');
  });

  test('no Authorization or Cookie ever reached a foreign host; the admin API reports the same state', async () => {
    for (const h of [A, B, C]) for (const r of h.requests()) assert.deepEqual([r.authorization, r.cookie], ['-', '-']);
    const denied = await request(`${sd.url}/-/admin/foreign`);
    assert.equal(denied.statusCode, 401);
    await denied.body.dump();
    const auth = { authorization: `Bearer ${TOKEN}` };
    const list = (await (await request(`${sd.url}/-/admin/foreign?status=denied`, { headers: auth })).body.json()) as { layers: { digest: string }[] };
    assert.deepEqual(list.layers.map((x) => x.digest).sort(), [L.deniedHost.digest, L.hop.digest, L.localhost.digest].sort());
    const stats = (await (await request(`${sd.url}/-/admin/foreign/stats`, { headers: auth })).body.json()) as Record<string, number>;
    assert.ok(stats.redirect! >= 2 && stats.fetch! >= 3 && stats.stream! >= 2 && stats.mismatch! >= 1 && stats.denied! >= 3);
    assert.match(sd.logs(), /"outcome":"redirect"/);
    assert.match(sd.logs(), /"foreign":"fetched"/);
  });
});
