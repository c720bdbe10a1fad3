// Signatures across the air gap: prefetch --referrers and export --referrers -> import -> serve --offline answers the
// referrers API and serves the signature and SBOM byte-exact (real registry 2.8, referrers tag schema, the CLI).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cosignSignature, pushReferrers, referrersTag, sbom, type Artifact } from '../helpers/artifacts.ts';
import { get, OCI_INDEX } from '../helpers/http.ts';
import { pushOciIndex, type PushedIndex } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, type RunResult, type TempDir } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

describe('referrers across the air gap (prefetch, export, import, serve --offline)', () => {
  let reg: Registry;
  let tmp: TempDir;
  let idx: PushedIndex;
  let sig: Artifact;
  let doc: Artifact;
  let list: Buffer;

  const cli = (data: string, ...args: string[]): Promise<RunResult> =>
    runCommand(process.execPath, [MAIN, ...args, '--data', data, '--upstream', reg.url], { timeoutMs: 60_000 });
  const ok = (r: RunResult): RunResult => {
    assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  /** With the upstream stopped, an --offline instance on `data` answers the referrers API and serves the artifacts. */
  async function assertServedOffline(data: string): Promise<void> {
    const sd: StevedoreProcess = await startStevedore({ dataDir: data, upstreams: [reg.url], extraArgs: ['--offline'] });
    try {
      const r = await get(`${sd.url}/v2/rb/app/referrers/${idx.manifestDigest}`);
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.headers['content-type'], OCI_INDEX);
      assert.ok(r.body.equals(list), 'the referrers list as the upstream had it');
      for (const a of [sig, doc]) {
        const m = await get(`${sd.url}/v2/rb/app/manifests/${a.digest}`);
        assert.equal(m.status, 200, `${a.artifactType}: ${m.body.toString()}`);
        assert.ok(m.body.equals(a.bytes));
        for (const b of a.blobs) assert.ok((await get(`${sd.url}/v2/rb/app/blobs/${b.digest}`)).body.equals(b.bytes), b.digest);
      }
      const img = await get(`${sd.url}/v2/rb/app/manifests/v1`);
      assert.ok(img.body.equals(idx.manifestBytes), 'the image itself');
    } finally {
      await sd.stop();
    }
  }

  before(async () => {
    tmp = makeTempDir('stevedore-referrers-bundle-');
    reg = await startRegistry();
    idx = await pushOciIndex(reg.url, 'rb/app', 'v1', { layerSize: 2000, layers: 1 });
    const subject = { digest: idx.manifestDigest, size: idx.manifestBytes.length, mediaType: idx.manifestMediaType };
    sig = cosignSignature(subject, `${reg.host}/rb/app`);
    doc = sbom(subject);
    list = await pushReferrers(reg.url, 'rb/app', subject, [sig, doc]);
  });
  after(async () => {
    await reg?.destroy();
    await tmp?.cleanup();
  });

  test('prefetch --referrers caches the signature and SBOM with the image: served with the upstream gone', async () => {
    const data = path.join(tmp.path, 'prefetched');
    const r = ok(await cli(data, 'prefetch', `${reg.host}/rb/app:v1`, '--all-platforms', '--referrers', '--json'));
    const image = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event?: string; referrers?: number })
      .find((e) => e.event === 'image');
    assert.equal(image?.referrers, 2, r.stdout);
    await reg.stop();
    try {
      await assertServedOffline(data);
    } finally {
      await reg.start();
    }
  });

  test('export --referrers carries each list as its referrers tag; import brings it in; serve --offline answers referrers', async () => {
    const source = path.join(tmp.path, 'connected');
    const bundle = path.join(tmp.path, 'app.tar');
    const plain = path.join(tmp.path, 'plain.tar');
    ok(await cli(source, 'export', `${reg.host}/rb/app:v1`, '-o', plain));
    const out = ok(await cli(source, 'export', `${reg.host}/rb/app:v1`, '-o', bundle, '--referrers')).stdout;
    const listRef = `${reg.host}/rb/app:${referrersTag(idx.manifestDigest)}`;
    assert.match(out, new RegExp(`^${listRef.replace(/[.]/g, '\\.')} `, 'm'), out);
    const target = path.join(tmp.path, 'airgapped');
    const plainTarget = path.join(tmp.path, 'airgapped-plain');
    ok(await cli(plainTarget, 'import', plain));
    const imported = ok(await cli(target, 'import', bundle)).stdout;
    assert.match(imported, /imported 2 images/, imported);
    await reg.stop();
    try {
      await assertServedOffline(target);
      // Without --referrers nothing of them crossed.
      const sd = await startStevedore({ dataDir: plainTarget, upstreams: [reg.url], extraArgs: ['--offline'] });
      try {
        assert.equal((await get(`${sd.url}/v2/rb/app/manifests/${sig.digest}`)).status, 404);
        assert.equal((await get(`${sd.url}/v2/rb/app/referrers/${idx.manifestDigest}`)).status, 404);
      } finally {
        await sd.stop();
      }
    } finally {
      await reg.start();
    }
  });
});
