// Eviction under a small --max-size while 10 skopeo clients pull 10 images at once: correct pulls, store within budget, pins kept, evicted content re-fetched.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { pushImage, pushOciIndex, seedOf, sha256, type PushedImage, type PushedIndex } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, waitFor, type TempDir } from '../helpers/tmp.ts';
import { Usage } from '../../src/store/usage.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const BUDGET = 4_000_000;
const IMAGES = 10;

/** Every file under an OCI layout's blobs/ is named by the sha256 of its bytes, and the expected ones are there. */
function assertLayoutIntact(dir: string, expected: string[]): void {
  const names = readdirSync(path.join(dir, 'blobs', 'sha256'));
  for (const n of names) assert.equal(sha256(readFileSync(path.join(dir, 'blobs', 'sha256', n))), `sha256:${n}`);
  for (const d of expected) assert.ok(names.includes(d.slice(7)), `layout ${dir} lacks ${d}`);
}

const dagOf = (i: PushedImage): string[] => [i.manifestDigest, i.configDigest, ...i.layers.map((l) => l.digest)];
const blobsOfIndex = (x: PushedIndex): string[] => x.manifests.flatMap((m) => [m.configDigest, ...m.layers.map((l) => l.digest)]);

describe('eviction under a small budget with concurrent pulls', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let pinned: PushedIndex;
  const images: PushedImage[] = [];
  // Only the commands that name images take --upstream.
  const cli = (...args: string[]) =>
    runCommand(process.execPath, [MAIN, ...args, '--data', sd.dataDir, ...(args[0] === 'pin' ? ['--upstream', reg.url] : []), '--log-level', 'warn'], {
      timeoutMs: 60_000,
    });
  const blobFile = (digest: string) => path.join(sd.dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));
  const onDisk = (digest: string) => existsSync(blobFile(digest)) && sha256(readFileSync(blobFile(digest))) === digest;
  const layerGets = (digest: string) => reg.requests().filter((r) => r.method === 'GET' && r.uri.endsWith(`/blobs/${digest}`)).length;
  const filesWithoutRows = () => {
    const db = new Database(path.join(sd.dataDir, 'metadata.db'), { readonly: true });
    try {
      const rows = new Set(
        db
          .prepare<[], { digest: string }>('SELECT digest FROM blobs')
          .all()
          .map((r) => r.digest),
      );
      const root = path.join(sd.dataDir, 'blobs', 'sha256');
      return readdirSync(root)
        .flatMap((p) => readdirSync(path.join(root, p)))
        .filter((hex) => !rows.has(`sha256:${hex}`));
    } finally {
      db.close();
    }
  };
  const totals = () => {
    const db = new Database(path.join(sd.dataDir, 'metadata.db'), { readonly: true });
    try {
      const t = new Usage(db).totals();
      return t.blobBytes + t.manifestBytes;
    } finally {
      db.close();
    }
  };

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    pinned = await pushOciIndex(reg.url, 'test/pinned', 'v1', { layerSize: 120_000 });
    for (let i = 0; i < IMAGES; i++) {
      images.push(await pushImage(reg.url, `test/img${i}`, 'v1', { layers: [{ seed: seedOf(`evict-${i}`), sizeBytes: 1_000_000 }], mediaTypes: 'oci' }));
    }
    sd = await startStevedore({ upstreams: [reg.url], tagTtl: 300, extraArgs: ['--max-size', String(BUDGET)] });
  });
  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('an index not cached yet cannot be pinned (prefetch --pin is named); pulled, it pins from the CLI on the live data dir', async () => {
    const refused = await cli('pin', 'test/pinned:v1');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^stevedore: test\/pinned:v1 is not cached \(tag unknown here\); fetch and pin it with: stevedore prefetch --pin test\/pinned:v1\n$/,
    );
    const dir = path.join(tmp.path, 'pinned');
    const pull = await copyToOciDir(`docker://${sd.host}/test/pinned:v1`, dir, { all: true });
    assert.equal(pull.code, 0, pull.stderr);
    assertLayoutIntact(dir, [pinned.manifestDigest, ...pinned.manifests.map((m) => m.manifestDigest), ...blobsOfIndex(pinned)]);
    // The commit follows the verified last byte by a moment.
    await waitFor('the pinned DAG committed', () => blobsOfIndex(pinned).every(onDisk), 5_000, 50);
    const r = await cli('pin', 'test/pinned:v1');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout.trim(),
      `pinned ${reg.host}/test/pinned:v1 -> ${pinned.manifestDigest} (${pinned.manifests.length} of ${pinned.manifests.length} platforms cached)`,
    );
    assert.match((await cli('pins')).stdout, new RegExp(`^${reg.host}/test/pinned:v1 ${pinned.manifestDigest} `, 'm'));
  });

  test('10 concurrent skopeo clients pulling ~1 MB images through a 4 MB budget all succeed with exact digests, while sweeps evict', async () => {
    // Client c pulls images c, c+3, c+6, ... (mod 10) in turn, until sweeps (1 s after commits) have evicted
    // content that later rounds then had to fetch again: pulls meet images evicted meanwhile or being evicted now.
    const sweeps = () =>
      sd
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"eviction sweep')).length;
    const fetched = () => images.reduce((n, img) => n + layerGets(img.layers[0]!.digest), 0);
    const enough = () => sweeps() >= 2 && fetched() > IMAGES + 2;
    const runs = await Promise.all(
      images.map(async (_, c) => {
        const out = [];
        for (let k = 0; k < 20 && (k < 3 || !enough()); k++) {
          const i = (c + 3 * k) % IMAGES;
          const dir = path.join(tmp.path, `flood-${c}-${k}`);
          out.push({ i, dir, r: await copyToOciDir(`docker://${sd.host}/test/img${i}:v1`, dir) });
        }
        return out;
      }),
    );
    for (const { i, dir, r } of runs.flat()) {
      assert.equal(r.code, 0, `img${i}: ${r.stderr}`);
      assertLayoutIntact(dir, dagOf(images[i]!));
    }
    assert.ok(enough(), `evicted layers were fetched again during the run (${sweeps()} sweeps, ${fetched()} upstream layer GETs, ${runs.flat().length} pulls)`);
  });

  test('the sweep brings the store within budget; pinned blobs stay; gc then finds nothing to do', async () => {
    // A sweep deletes rows first, then files: settled once within budget and no file is left without its row.
    await waitFor(`store <= ${BUDGET} bytes, every file with its row`, () => totals() <= BUDGET && filesWithoutRows().length === 0, 20_000, 200);
    for (const d of blobsOfIndex(pinned)) assert.ok(onDisk(d), `pinned blob ${d} still on disk and intact`);
    const evicted = images.filter((img) => !onDisk(img.layers[0]!.digest));
    assert.ok(evicted.length >= IMAGES - 3, `${evicted.length} images' layers evicted`);
    const metrics = await (await fetch(`${sd.url}/metrics`)).text();
    const n = Number(/^stevedore_evictions_total\{kind="blob"\} (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(n >= evicted.length, `evictions counted: ${n}`);
    const gc = await cli('gc', '--max-size', String(BUDGET));
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^freed 0 B of 0 B needed \(0 objects; budget maxSize 4\.\d MB\)$/m);
    const du = await cli('du');
    assert.match(du.stdout, /^total \d+(\.\d)? (kB|MB): /m);
  });

  test('an evicted image pulls again (re-fetched from upstream); an evicted blob is a complete 200, never an empty one', async () => {
    const evicted = images.filter((img) => !onDisk(img.layers[0]!.digest));
    const [again, direct] = [evicted[0]!, evicted[1]!];
    const layer = again.layers[0]!;
    const before = layerGets(layer.digest);
    const i = images.indexOf(again);
    const r = await copyToOciDir(`docker://${sd.host}/test/img${i}:v1`, path.join(tmp.path, `again-${i}`));
    assert.equal(r.code, 0, r.stderr);
    assertLayoutIntact(path.join(tmp.path, `again-${i}`), dagOf(again));
    await waitFor('the re-fetch in the registry log', () => layerGets(layer.digest) > before, 5_000, 20);

    const l2 = direct.layers[0]!;
    const res = await request(`${sd.url}/v2/test/img${images.indexOf(direct)}/blobs/${l2.digest}`, { headersTimeout: 30_000, bodyTimeout: 30_000 });
    const h = createHash('sha256');
    let bytes = 0;
    for await (const c of res.body) {
      h.update(c as Buffer);
      bytes += (c as Buffer).length;
    }
    assert.deepEqual([res.statusCode, res.headers['content-length'], bytes, `sha256:${h.digest('hex')}`], [200, String(l2.size), l2.size, l2.digest]);
  });

  test('with the registry stopped, the pinned index still pulls completely from the cache', async () => {
    // The re-fetches went over budget again: the next sweep brings it back, and must not touch the pin either.
    await waitFor(`store <= ${BUDGET} bytes again`, () => totals() <= BUDGET && filesWithoutRows().length === 0, 20_000, 200);
    await reg.stop();
    try {
      const dir = path.join(tmp.path, 'pinned-offline');
      const r = await copyToOciDir(`docker://${sd.host}/test/pinned:v1`, dir, { all: true });
      assert.equal(r.code, 0, r.stderr);
      assertLayoutIntact(dir, [pinned.manifestDigest, ...pinned.manifests.map((m) => m.manifestDigest), ...blobsOfIndex(pinned)]);
    } finally {
      await reg.start();
    }
  });
});
