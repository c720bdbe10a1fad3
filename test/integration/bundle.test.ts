// Export and import across an air gap: real registry upstream, skopeo and containerd clients, the stevedore CLI.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { stringify } from 'yaml';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.ts';
import {
  makeLayerFile,
  pushDockerManifestList,
  pushForeignImage,
  pushMultiLayer,
  pushOciIndex,
  sha256,
  type PushedImage,
  type PushedIndex,
} from '../helpers/images.ts';
import { body, entryOf, tarEntries, type BundleJson } from '../helpers/bundle.ts';
import { startNginx, type Nginx } from '../helpers/nginx.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { inspectRaw, skopeo } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, waitFor, type RunResult, type TempDir } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
// containerd's fallback `server`: a dead port, so a pull can only succeed through the offline stevedore.
const DEAD_SERVER = 'http://127.0.0.1:9';

const digestsOf = (img: PushedImage) => [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)];

describe('export and import across an air gap (registry upstream, skopeo, containerd)', () => {
  let reg: Registry;
  let nginx: Nginx;
  let ctd: Containerd;
  let connected: StevedoreProcess; // sees the upstream
  let airgapped: StevedoreProcess; // its own empty data dir, --offline
  let tmp: TempDir;
  let cfgFile: string;
  let multi: PushedImage;
  let idx: PushedIndex & { amd64: PushedImage; arm64: PushedImage; amd64Zstd: PushedImage };
  let dlist: PushedIndex & { amd64: PushedImage; arm64: PushedImage };
  let foreign: PushedImage; // its foreign layer is cached by the connected instance
  let foreignMissing: PushedImage; // its foreign layer was never cached
  let bundle: string;
  const refs: Record<string, string> = {};

  const cli = (sd: StevedoreProcess, ...args: string[]): Promise<RunResult> =>
    runCommand(process.execPath, [MAIN, ...args, '--data', sd.dataDir, '--upstream', reg.url, '--config', cfgFile], { timeoutMs: 60_000 });
  const ok = (r: RunResult): RunResult => {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  /** What an import can make visible on the air-gapped instance (access times excluded: serving updates them). */
  const visible = () => {
    const db = new Database(path.join(airgapped.dataDir, 'metadata.db'), { readonly: true });
    try {
      const q = (sql: string) => db.prepare(sql).all();
      const blobsDir = path.join(airgapped.dataDir, 'blobs');
      return {
        blobs: q('SELECT digest, size, created_at FROM blobs ORDER BY digest'),
        manifests: q('SELECT digest, media_type, created_at FROM manifests ORDER BY digest'),
        tags: q('SELECT * FROM tags ORDER BY upstream, repo, tag'),
        links: q('SELECT * FROM links ORDER BY upstream, repo, digest'),
        refs: q('SELECT * FROM manifest_refs ORDER BY manifest, child'),
        files: readdirSync(blobsDir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => e.name)
          .sort(),
      };
    } finally {
      db.close();
    }
  };
  const getBlob = async (sd: StevedoreProcess, repo: string, digest: string) => {
    const res = await request(`${sd.url}/v2/${reg.host}/${repo}/blobs/${digest}`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
    return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
  };
  // The registry is each instance's default upstream, so clients name repositories without its host.
  const via = (sd: StevedoreProcess, ref: string) => `docker://${sd.host}/${ref.slice(reg.host.length + 1)}`;
  const throughB = (ref: string) => via(airgapped, ref);

  before(async () => {
    tmp = makeTempDir('stevedore-bundle-');
    [reg, nginx, ctd] = await Promise.all([startRegistry({ allowForeignUrls: true }), startNginx(), startContainerd()]);
    multi = await pushMultiLayer(reg.url, 'test/multi', 'v1', 3);
    idx = await pushOciIndex(reg.url, 'test/index', 'v1');
    dlist = await pushDockerManifestList(reg.url, 'test/dlist', 'v1');
    const f1 = await makeLayerFile(8101, 40_000);
    const f2 = await makeLayerFile(8102, 30_000);
    nginx.put(`/fetch/${f1.digest}`, f1.path);
    foreign = await pushForeignImage(reg.url, 'test/foreign', 'v1', { foreignBlobPath: f1.path, urls: [`${nginx.url}/fetch/${f1.digest}`], style: 'docker' });
    foreignMissing = await pushForeignImage(reg.url, 'test/foreign-missing', 'v1', {
      foreignBlobPath: f2.path,
      urls: [`${nginx.url}/nowhere/${f2.digest}`],
      style: 'oci',
    });
    for (const r of ['multi', 'index', 'dlist', 'foreign', 'foreign-missing']) refs[r] = `${reg.host}/test/${r}:v1`;
    cfgFile = path.join(tmp.path, 'config.yaml');
    writeFileSync(
      cfgFile,
      stringify({ foreign: { rules: [{ match: `http://127.0.0.1:${nginx.port}/fetch/*`, action: 'fetch', allowPrivate: ['127.0.0.1/32'] }] } }),
    );
    [connected, airgapped] = await Promise.all([
      startStevedore({ upstreams: [reg.url], extraArgs: ['--config', cfgFile] }),
      // The upstream must be configured by name (that is how clients address it), but it is never contacted.
      startStevedore({ upstreams: [reg.url], extraArgs: ['--config', cfgFile, '--offline'] }),
    ]);
    bundle = path.join(tmp.path, 'bundle.tar');
  });

  after(async () => {
    await Promise.allSettled([connected?.stop(), airgapped?.stop(), ctd?.stop(), reg?.destroy(), nginx?.destroy()]);
    await tmp?.cleanup();
  });

  test('export: an OCI layout of exactly the upstream bytes, full ref names, foreign layers when cached; skopeo reads it', async () => {
    // Connected site: prefetch three images (the foreign layer through its fetch rule), pull one platform of the
    // index with skopeo. The rest of the index, and all of foreign-missing, are fetched by export itself.
    ok(await cli(connected, 'prefetch', refs.multi!, refs.dlist!, refs.foreign!, '--all-platforms', '--compression', 'any'));
    ok(await skopeo(['copy', '--src-tls-verify=false', via(connected, refs.index!), `oci:${path.join(tmp.path, 'pulled')}:x`]));
    const fl = foreign.layers[1]!;
    await waitFor(
      'the foreign layer committed',
      () => existsSync(path.join(connected.dataDir, 'blobs', 'sha256', fl.digest.slice(7, 9), fl.digest.slice(7))),
      10_000,
      50,
    );

    const r = ok(await cli(connected, 'export', ...Object.values(refs), '-o', bundle));
    assert.match(r.stdout, /wrote .*bundle\.tar: 5 images/);
    const buf = readFileSync(bundle);
    const entries = tarEntries(buf);
    assert.deepEqual(JSON.parse(body(buf, entries.get('oci-layout')!).toString()), { imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(body(buf, entries.get('index.json')!).toString()) as {
      manifests: { mediaType: string; digest: string; size: number; annotations: Record<string, string> }[];
    };
    const roots: [string, PushedImage | PushedIndex][] = [
      ['multi', multi],
      ['index', idx],
      ['dlist', dlist],
      ['foreign', foreign],
      ['foreign-missing', foreignMissing],
    ];
    assert.deepEqual(
      index.manifests.map((m) => [m.annotations['org.opencontainers.image.ref.name'], m.digest, m.mediaType, m.size]),
      roots.map(([name, img]) => [refs[name], img.manifestDigest, img.manifestMediaType, img.manifestBytes.length]),
      'roots keep host, repository, tag and their own media type',
    );
    // Every manifest byte-for-byte as pushed; every blob named by its digest, and the digests are upstream's.
    const manifests = [multi, idx, idx.amd64, idx.arm64, idx.amd64Zstd, dlist, dlist.amd64, dlist.arm64, foreign, foreignMissing];
    for (const m of manifests) assert.ok(body(buf, entries.get(entryOf(m.manifestDigest))!).equals(m.manifestBytes), m.manifestDigest);
    const blobs = new Set(
      [multi, idx.amd64, idx.arm64, idx.amd64Zstd, dlist.amd64, dlist.arm64, foreign, foreignMissing].flatMap((i) => [
        i.configDigest,
        ...i.layers.map((l) => l.digest),
      ]),
    );
    blobs.delete(foreignMissing.layers[1]!.digest);
    const inTar = [...entries].filter(([n, e]) => n.startsWith('blobs/sha256/') && e.type === '0');
    for (const [name, e] of inTar) assert.equal(entryOf(sha256(body(buf, e))), name, `${name} holds the bytes its name says`);
    assert.deepEqual(new Set(inTar.map(([n]) => n)), new Set([...blobs, ...manifests.map((m) => m.manifestDigest)].map(entryOf)));
    assert.ok(entries.has(entryOf(fl.digest)), 'the cached foreign layer is inside');
    const info = JSON.parse(body(buf, entries.get('stevedore-bundle.json')!).toString()) as BundleJson;
    assert.equal(info.format, 'stevedore-bundle/v1');
    assert.deepEqual(info.totals, { images: 5, manifests: manifests.length, blobs: blobs.size, bytes: [...inTar].reduce((n, [, e]) => n + e.size, 0) });
    assert.deepEqual(
      info.images.map((i) => [i.ref, i.digest, i.platforms]),
      [
        [refs.multi, multi.manifestDigest, ['linux/amd64']],
        [refs.index, idx.manifestDigest, ['linux/amd64', 'linux/arm64/v8']],
        [refs.dlist, dlist.manifestDigest, ['linux/amd64', 'linux/arm64/v8']],
        [refs.foreign, foreign.manifestDigest, ['linux/amd64']],
        [refs['foreign-missing'], foreignMissing.manifestDigest, ['linux/amd64']],
      ],
    );
    assert.deepEqual(info.images.find((i) => i.ref === refs['foreign-missing'])!.foreignNotIncluded, [foreignMissing.layers[1]!.digest]);

    // skopeo reads it as an oci-archive, by the full ref name: a single image and a whole OCI index.
    const dirMulti = path.join(tmp.path, 'sk-multi');
    ok(await skopeo(['copy', `oci-archive:${bundle}:${refs.multi}`, `dir:${dirMulti}`]));
    assert.ok(readFileSync(path.join(dirMulti, 'manifest.json')).equals(multi.manifestBytes));
    for (const d of digestsOf(multi).slice(1)) assert.equal(sha256(readFileSync(path.join(dirMulti, d.slice(7)))), d);
    const dirIdx = path.join(tmp.path, 'sk-index');
    ok(await skopeo(['copy', '--all', `oci-archive:${bundle}:${refs.index}`, `oci:${dirIdx}:x`]));
    assert.equal(
      (JSON.parse(readFileSync(path.join(dirIdx, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0]!.digest,
      idx.manifestDigest,
    );
    for (const d of [idx.arm64, idx.amd64Zstd].flatMap(digestsOf)) assert.ok(existsSync(path.join(dirIdx, entryOf(d))), d);
    // (A Docker manifest list keeps its media type in index.json, as the image-spec allows; skopeo 1.9 selects
    // only OCI-typed roots by name, so that one is read back by stevedore import below, and pulled from there.)
  });

  test('export --platform takes the index unchanged and only that platform; --offline refuses what is not cached; nothing is written on failure', async () => {
    const arm = path.join(tmp.path, 'arm.tar');
    ok(await cli(connected, 'export', refs.index!, '--platform', 'linux/arm64', '--offline', '-o', arm));
    const buf = readFileSync(arm);
    const names = new Set([...tarEntries(buf).keys()].filter((n) => /^blobs\/sha256\/[0-9a-f]{64}$/.test(n)));
    assert.deepEqual(names, new Set([idx.manifestDigest, ...digestsOf(idx.arm64)].map(entryOf)));
    const info = JSON.parse(body(buf, tarEntries(buf).get('stevedore-bundle.json')!).toString()) as BundleJson;
    assert.deepEqual(info.images[0]!.platforms, ['linux/arm64/v8']);

    await pushMultiLayer(reg.url, 'test/uncached', 'v1', 1);
    const out = path.join(tmp.path, 'never.tar');
    const r = await cli(connected, 'export', `${reg.host}/test/uncached:v1`, '--offline', '-o', out);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`stevedore: ${reg.host.replace(/\./g, '\\.')}/test/uncached:v1: .*offline`));
    assert.deepEqual(
      readdirSync(tmp.path).filter((n) => n.startsWith('never.tar')),
      [],
    );
    const unwritable = await cli(connected, 'export', refs.multi!, '-o', path.join(tmp.path, 'no-such-dir', 'x.tar'));
    assert.equal(unwritable.code, 1);
    assert.match(unwritable.stderr, /^stevedore: .*no-such-dir\/x\.tar: cannot write it \(ENOENT/);
  });

  test('a corrupted bundle is refused, naming the bad entry; nothing of it becomes visible', async () => {
    const before = visible();
    const buf = Buffer.from(readFileSync(bundle));
    const entries = [...tarEntries(buf)];
    // The last blob: every entry before it was staged already, and must not be committed either.
    const [name, e] = entries.filter(([n]) => n.startsWith('blobs/sha256/')).at(-1)!;
    buf.writeUInt8(buf.readUInt8(e.offset + (e.size >> 1)) ^ 0xff, e.offset + (e.size >> 1));
    const bad = path.join(tmp.path, 'corrupt.tar');
    writeFileSync(bad, buf);
    const r = await cli(airgapped, 'import', bad);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`^stevedore: ${name}: content hashes to sha256:[0-9a-f]{64}, not the digest its name says`));
    assert.deepEqual(visible(), before);
    assert.deepEqual(readdirSync(path.join(airgapped.dataDir, 'tmp')), []);
    const m = await request(`${airgapped.url}/v2/${reg.host}/test/multi/manifests/v1`);
    await m.body.dump();
    assert.equal(m.statusCode, 404);
  });

  test('archives made by skopeo import: a tag-only name needs --name, a full name does not; served byte-exact offline', async () => {
    const sk = await pushMultiLayer(reg.url, 'test/sk-oci', 'v1', 2);
    const skIdx = await pushOciIndex(reg.url, 'test/sk-index', 'v1');
    const tagOnly = path.join(tmp.path, 'skopeo-tag.tar');
    const fullName = path.join(tmp.path, 'skopeo-full.tar');
    ok(await skopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/test/sk-oci:v1`, `oci-archive:${tagOnly}:v1`]));
    ok(
      await skopeo([
        'copy',
        '--src-tls-verify=false',
        '--all',
        `docker://${reg.host}/test/sk-index:v1`,
        `oci-archive:${fullName}:${reg.host}/test/sk-index:v1`,
      ]),
    );
    const order = [...tarEntries(readFileSync(fullName)).keys()];
    assert.ok(order.indexOf('index.json') > order.indexOf(entryOf(skIdx.manifestDigest)), 'skopeo writes index.json after the blobs');

    const before = visible();
    const refused = await cli(airgapped, 'import', tagOnly);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /index\.json: image sha256:[0-9a-f]{64} is named "v1", without a registry host; give the destination with --name host\/repo\[:tag\]/,
    );
    assert.deepEqual(visible(), before);
    ok(await cli(airgapped, 'import', tagOnly, '--name', `${reg.host}/test/sk-oci`));
    ok(await cli(airgapped, 'import', fullName));

    reg.clearRequests();
    assert.ok((await inspectRaw(throughB(`${reg.host}/test/sk-oci:v1`))).equals(sk.manifestBytes));
    const dir = path.join(tmp.path, 'from-skopeo-archive');
    ok(await skopeo(['copy', '--src-tls-verify=false', '--all', throughB(`${reg.host}/test/sk-index:v1`), `oci:${dir}:x`]));
    for (const d of [skIdx.manifestDigest, ...[skIdx.amd64, skIdx.arm64, skIdx.amd64Zstd].flatMap(digestsOf)])
      assert.ok(existsSync(path.join(dir, entryOf(d))), d);
    assert.deepEqual(reg.requests(), [], 'the offline instance never asked the upstream');
  });

  test('air gap: import into the running offline instance; skopeo and containerd pull everything with the upstream stopped', async () => {
    const r = ok(await cli(airgapped, 'import', bundle));
    for (const ref of Object.values(refs)) assert.match(r.stdout, new RegExp(`^${ref.replace(/\./g, '\\.')} sha256:`, 'm'));
    assert.match(r.stdout, /1 foreign layer\(s\) referenced but not in the bundle/);
    await Promise.all([reg.stop(), nginx.stop()]);

    for (const [name, img] of [
      ['multi', multi],
      ['index', idx],
      ['dlist', dlist],
      ['foreign', foreign],
      ['foreign-missing', foreignMissing],
    ] as const) {
      assert.ok((await inspectRaw(throughB(refs[name]!))).equals(img.manifestBytes), `${name}: manifest identical to upstream`);
    }
    const dirMulti = path.join(tmp.path, 'b-multi');
    ok(await skopeo(['copy', '--src-tls-verify=false', throughB(refs.multi!), `dir:${dirMulti}`]));
    for (const d of digestsOf(multi).slice(1)) assert.equal(sha256(readFileSync(path.join(dirMulti, d.slice(7)))), d);
    const dirIdx = path.join(tmp.path, 'b-index');
    ok(await skopeo(['copy', '--src-tls-verify=false', '--all', throughB(refs.index!), `oci:${dirIdx}:x`]));
    for (const d of [idx.manifestDigest, ...[idx.amd64, idx.arm64, idx.amd64Zstd].flatMap(digestsOf)]) {
      assert.equal(sha256(readFileSync(path.join(dirIdx, entryOf(d)))), d);
    }
    const dirList = path.join(tmp.path, 'b-dlist');
    ok(await skopeo(['copy', '--src-tls-verify=false', '--override-arch', 'arm64', throughB(refs.dlist!), `dir:${dirList}`]));
    assert.ok(readFileSync(path.join(dirList, 'manifest.json')).equals(dlist.arm64.manifestBytes));
    // Foreign layers: the cached one is served from the bundle; the other gets the clear foreign-layer 404.
    const fl = await getBlob(airgapped, 'test/foreign', foreign.layers[1]!.digest);
    assert.equal(fl.status, 200);
    assert.equal(sha256(fl.body), foreign.layers[1]!.digest);
    const missing = await getBlob(airgapped, 'test/foreign-missing', foreignMissing.layers[1]!.digest);
    assert.equal(missing.status, 404);
    assert.match(missing.body.toString(), /foreign layer/);

    // containerd: the offline stevedore is the only host that answers (server = a dead port); it unpacks, so diff_ids are checked too.
    const hostsDir = path.join(tmp.path, 'certs.d');
    writeHostsToml(hostsDir, reg.host, airgapped.url, { server: DEAD_SERVER });
    for (const [ref, platform, img] of [
      [refs.multi, 'linux/amd64', multi],
      [refs.index, 'linux/arm64', idx.arm64],
      [refs.dlist, 'linux/amd64', dlist.amd64],
    ] as const) {
      const pull = await ctd.pull(ref!, { hostsDir, platform });
      assert.equal(pull.code, 0, `${ref}: ${pull.stderr}`);
      const content = await ctd.contentDigests();
      for (const d of digestsOf(img)) assert.ok(content.includes(d), `${ref}: ${d}`);
    }
    assert.ok((await ctd.contentDigests()).includes(idx.manifestDigest));
  });

  test('importing the same bundle again is a no-op', async () => {
    const before = visible();
    const r = ok(await cli(airgapped, 'import', bundle));
    assert.match(r.stdout, /imported 5 images: 0 of 10 manifests new, 0 of \d+ blobs new \(0 B\), 0 tags set \(nothing new: already imported\)/);
    assert.deepEqual(visible(), before);
  });
});
