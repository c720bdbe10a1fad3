// Unit tests of src/jobs/bundle/import.ts: import of hand-built archives into a fresh offline data dir (order, refusals, no-op re-import).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import tar from 'tar-stream';
import { buildApp, type Stevedore } from '../../../../src/app.ts';
import { ImportError, importBundle, type ImportOptions } from '../../../../src/jobs/bundle/import.ts';
import { parseFullRef } from '../../../../src/jobs/bundle/layout.ts';
import { loadConfig } from '../../../../src/config/load.ts';
import { makeTempDir, type TempDir } from '../../../helpers/tmp.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const entryOf = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
const HOST = 'reg.example:5000';

type Entry = [name: string, body: Buffer] | [name: string, link: { symlink: string }];

/** Builds a tar in memory with tar-stream (entries in the given order). */
async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const [name, body] of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (Buffer.isBuffer(body)) pack.entry({ name, size: body.length }, body, cb);
      else pack.entry({ name, type: 'symlink', linkname: body.symlink }, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A small OCI image: config, one ordinary layer, one foreign layer (never in a bundle), and its manifest. */
function image(seed: string) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', seed, rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.concat([Buffer.from(seed), randomBytes(5000)]);
  const foreign = randomBytes(300);
  const manifest = Buffer.from(
    `${JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length },
          {
            mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
            digest: sha(foreign),
            size: foreign.length,
            urls: ['https://foreign.example/l'],
          },
        ],
      },
      null,
      2,
    )}\n`,
  );
  return { config, layer, foreign, manifest, digest: sha(manifest) };
}
type Image = ReturnType<typeof image>;

const layoutFile: Entry = ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')];
function indexFile(img: Image, annotations?: Record<string, string>, size = img.manifest.length): Entry {
  return [
    'index.json',
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.digest, size, ...(annotations ? { annotations } : {}) }],
      }),
    ),
  ];
}
const blobs = (img: Image): Entry[] => [
  [entryOf(sha(img.layer)), img.layer],
  [entryOf(sha(img.config)), img.config],
  [entryOf(img.digest), img.manifest],
];
const named = (ref: string) => ({ 'org.opencontainers.image.ref.name': ref });

describe('bundle import into a fresh offline data dir', () => {
  let tmp: TempDir;
  let s: Stevedore;
  let n = 0;

  before(() => {
    tmp = makeTempDir('stevedore-bundle-unit-');
    s = buildApp(loadConfig({ data: path.join(tmp.path, 'data'), offline: true, upstream: [`${HOST}=http://127.0.0.1:9`] }, {}), pino({ level: 'silent' }));
  });
  after(async () => {
    await s?.close();
    await tmp?.cleanup();
  });

  const run = async (entries: Entry[], opts: Omit<ImportOptions, 'file'> = {}) => {
    const file = path.join(tmp.path, `b${++n}.tar`);
    writeFileSync(file, await makeTar(entries));
    return importBundle(
      { store: s.store, meta: s.meta, resolve: (name) => s.proxy.resolve(name, undefined), onManifest: s.foreign.onManifest },
      { file, ...opts },
    );
  };
  /** Everything an import could make visible, and what it could leave behind in tmp/. */
  const snapshot = () => {
    const q = (sql: string) => s.meta.db.prepare(sql).all();
    const files = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => path.join(e.parentPath, e.name))
        .sort();
    return {
      blobs: q('SELECT digest, size, created_at FROM blobs ORDER BY digest'),
      manifests: q('SELECT digest, media_type, created_at FROM manifests ORDER BY digest'),
      tags: q('SELECT * FROM tags ORDER BY upstream, repo, tag'),
      links: q('SELECT * FROM links ORDER BY upstream, repo, digest'),
      refs: q('SELECT * FROM manifest_refs ORDER BY manifest, child'),
      foreign: q('SELECT digest, last_seen FROM foreign_layers ORDER BY digest'),
      files: files(s.store.paths.blobsDir),
      tmp: files(s.store.paths.tmpDir),
    };
  };
  const refused = async (entries: Entry[], message: RegExp, opts: Omit<ImportOptions, 'file'> = {}) => {
    const before = snapshot();
    await assert.rejects(run(entries, opts), (e: unknown) => {
      assert.ok(e instanceof ImportError, String(e));
      assert.match(e.message, message);
      return true;
    });
    assert.deepEqual(snapshot(), before, 'a refused bundle changes nothing and leaves no temp file');
  };

  test('entries in any order (index.json last, as skopeo writes it); served offline at once; a missing foreign layer is fine', async () => {
    const img = image('first');
    const r = await run([...blobs(img), layoutFile, indexFile(img, named(`${HOST}/team/app:v1`))]);
    assert.deepEqual(r.images, [{ ref: `${HOST}/team/app:v1`, digest: img.digest }]);
    assert.deepEqual(r.manifests, { total: 1, added: 1 });
    assert.deepEqual(r.blobs, { total: 2, added: 2, addedBytes: img.layer.length + img.config.length });
    assert.deepEqual(r.foreignNotIncluded, [sha(img.foreign)]);
    const m = await s.app.request(`/v2/${HOST}/team/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('docker-content-digest'), img.digest);
    assert.ok(Buffer.from(await m.arrayBuffer()).equals(img.manifest), 'manifest bytes unchanged');
    const b = await s.app.request(`/v2/${HOST}/team/app/blobs/${sha(img.layer)}`);
    assert.equal(b.status, 200);
    assert.equal(sha(Buffer.from(await b.arrayBuffer())), sha(img.layer));
    // The foreign layer is recorded, so an offline pull gets the clear foreign-layer answer, not an upstream error.
    const f = await s.app.request(`/v2/${HOST}/team/app/blobs/${sha(img.foreign)}`);
    assert.equal(f.status, 404);
    assert.match(await f.text(), /foreign layer/);
  });

  test('importing the same bundle twice is a no-op (rows, timestamps, files)', async () => {
    const img = image('twice');
    const entries: Entry[] = [layoutFile, indexFile(img, named(`${HOST}/team/twice:v1`)), ...blobs(img)];
    await run(entries);
    const before = snapshot();
    const again = await run(entries);
    assert.deepEqual([again.manifests.added, again.blobs.added, again.tags.changed, again.tags.unchanged], [0, 0, 0, 1]);
    assert.deepEqual(snapshot(), before);
  });

  test('--name gives the repository to roots named by a tag only, or not at all; a full --name tag wins', async () => {
    const a = image('tag-only');
    const ra = await run([layoutFile, indexFile(a, named('v7')), ...blobs(a)], { name: parseFullRef(`${HOST}/team/named`)! });
    assert.deepEqual(
      ra.images.map((i) => i.ref),
      [`${HOST}/team/named:v7`],
    );
    assert.equal(s.meta.getTag(HOST, 'team/named', 'v7')?.digest, a.digest);
    const b = image('unnamed');
    const rb = await run([layoutFile, indexFile(b), ...blobs(b)], { name: parseFullRef(`${HOST}/team/named:v8`)! });
    assert.deepEqual(
      rb.images.map((i) => i.ref),
      [`${HOST}/team/named:v8`],
    );
    assert.equal(s.meta.getTag(HOST, 'team/named', 'v8')?.digest, b.digest);
  });

  test('refusals name the bad entry, and nothing becomes visible', async () => {
    const img = image('refused');
    const idx = indexFile(img, named(`${HOST}/team/refused:v1`));
    // The corrupt entry comes last, after every good blob was staged: those must not be committed either.
    const flipped = Buffer.from(img.layer);
    flipped.writeUInt8(flipped.readUInt8(100) ^ 0xff, 100);
    await refused(
      [layoutFile, idx, [entryOf(sha(img.config)), img.config], [entryOf(img.digest), img.manifest], [entryOf(sha(img.layer)), flipped]],
      new RegExp(`^${entryOf(sha(img.layer))}: content hashes to sha256:`),
    );
    await refused(
      [layoutFile, idx, [entryOf(sha(img.config)), img.config], [entryOf(img.digest), img.manifest]],
      new RegExp(`^${entryOf(sha(img.layer))}: missing; manifest ${img.digest} references it`),
    );
    await refused(
      [layoutFile, idx, [entryOf(sha(img.config)), img.config], [entryOf(img.digest), img.manifest], [entryOf(sha(img.layer)), { symlink: '/etc/passwd' }]],
      new RegExp(`^${entryOf(sha(img.layer))}: a symlink entry, not a regular file`),
    );
    await refused(
      [layoutFile, indexFile(img, named(`${HOST}/team/refused:v1`), img.manifest.length + 1), ...blobs(img)],
      new RegExp(`^${entryOf(img.digest)}: ${img.manifest.length} bytes, but its descriptor says`),
    );
    await refused(
      [layoutFile, idx, [entryOf(sha(img.layer)), img.layer], [entryOf(sha(img.config)), img.config]],
      new RegExp(`^${entryOf(img.digest)}: missing; index.json names it for ${HOST}/team/refused:v1`),
    );
    await refused(
      [layoutFile, indexFile(img, named('v1')), ...blobs(img)],
      /^index\.json: image sha256:\w+ is named "v1", without a registry host; give the destination with --name/,
    );
    await refused([layoutFile, indexFile(img, named('team/refused:v1')), ...blobs(img)], /without a registry host/);
    await refused([layoutFile, indexFile(img, named('other.example/x:v1')), ...blobs(img)], /^index\.json: other\.example\/x:v1: .*upstream not configured/);
    await refused([idx, ...blobs(img)], /^oci-layout: missing/);
    await refused([layoutFile, ...blobs(img)], /^index\.json: missing/);
    const whole = await makeTar([layoutFile, idx, ...blobs(img)]);
    const file = path.join(tmp.path, 'truncated.tar');
    writeFileSync(file, whole.subarray(0, 2048 + 700));
    const before = snapshot();
    await assert.rejects(
      importBundle({ store: s.store, meta: s.meta, resolve: (name) => s.proxy.resolve(name, undefined) }, { file }),
      /not a readable tar archive/,
    );
    assert.deepEqual(snapshot(), before);
  });
});
