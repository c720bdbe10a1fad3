// stevedore prefetch against a real registry behind a byte-counting proxy: selection, cache reuse, failures, resume, rate.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { pushBigLayer, pushOciIndex, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, spawnTracked, waitFor } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

type Line = Record<string, unknown> & { event: string };
interface Summary {
  ok: boolean;
  seconds: number;
  images: { ref: string; digest?: string; ok: boolean; reason?: string }[];
  fetched: { blobs: number; bytes: number };
  cached: { blobs: number; bytes: number };
  failed: { images: number; blobs: number; reasons: { ref: string; reason: string }[] };
}

const blobsOf = (img: PushedImage): string[] => [img.configDigest, ...img.layers.map((l) => l.digest)].sort();
const bytesOf = (img: PushedImage): number => img.configBytes.length + img.layers.reduce((a, l) => a + l.size, 0);

/** Bytes of `digest` in the data dir's partial/ (0 when there is none). */
function partialSize(dir: string, digest: string): number {
  try {
    return statSync(path.join(dir, 'partial', digest.replace(':', '-'))).size;
  } catch {
    return 0;
  }
}

describe('stevedore prefetch', () => {
  let registry: Registry;
  let proxy: CountingProxy;
  let idx: Awaited<ReturnType<typeof pushOciIndex>>;
  const data = makeTempDir('stevedore-prefetch-').path;

  async function prefetch(args: string[], dataDir = data) {
    const t0 = performance.now();
    const r = await runCommand(process.execPath, [MAIN, 'prefetch', '--data', dataDir, '--upstream', proxy.url, ...args], { timeoutMs: 60_000 });
    const elapsed = (performance.now() - t0) / 1000;
    const lines = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);
    const summary = lines.find((l) => l.event === 'summary') as unknown as Summary | undefined;
    assert.ok(summary, `a summary line (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    return { ...r, lines, summary, elapsed };
  }
  const blobGets = () =>
    registry
      .requests()
      .filter((r) => r.method === 'GET' && r.uri.includes('/blobs/'))
      .map((r) => r.uri.split('/blobs/')[1]!)
      .sort();

  before(async () => {
    registry = await startRegistry();
    proxy = await startCountingProxy(registry.url);
    idx = await pushOciIndex(registry.url, 'test/idx', '1');
  });
  after(async () => {
    await proxy?.stop();
    await registry?.destroy();
  });

  test("--platform linux/arm64 fetches only arm64's manifest and blobs, as JSON lines", async () => {
    registry.clearRequests();
    const r = await prefetch(['test/idx:1', '--platform', 'linux/arm64']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(blobGets(), blobsOf(idx.arm64), "exactly arm64's config and layers were downloaded");
    const manifests = registry
      .requests()
      .filter((q) => q.uri.includes('/manifests/'))
      .map((q) => `${q.method} ${q.uri.split('/manifests/')[1]}`);
    assert.deepEqual(manifests.sort(), ['GET 1', `GET ${idx.arm64.manifestDigest}`].sort());
    assert.equal(r.summary.fetched.blobs, 3);
    assert.equal(r.summary.fetched.bytes, bytesOf(idx.arm64));
    assert.deepEqual(r.summary.images, [{ ref: 'test/idx:1', digest: idx.manifestDigest, ok: true }]);
    const blobLines = r.lines.filter((l) => l.event === 'blob');
    assert.deepEqual(blobLines.map((l) => l.digest).sort(), blobsOf(idx.arm64));
    assert.ok(blobLines.every((l) => l.status === 'fetched'));
    assert.ok(
      r.lines.some((l) => l.event === 'progress' || l.event === 'image'),
      'progress is reported',
    );
  });

  test('a second run costs one HEAD for the tag and no upstream byte', async () => {
    registry.clearRequests();
    proxy.reset();
    const r = await prefetch(['test/idx:1', '--platform', 'linux/arm64']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      registry.requests().map((q) => `${q.method} ${q.uri}`),
      ['HEAD /v2/test/idx/manifests/1'],
    );
    assert.equal(proxy.bytes(), 0);
    assert.equal(r.summary.cached.blobs, 3);
    assert.equal(r.summary.fetched.blobs, 0);
  });

  test('--compression zstd picks the zstd variant the index offers; --pin pins it', async () => {
    registry.clearRequests();
    const r = await prefetch(['test/idx:1', '--platform', 'linux/amd64', '--compression', 'zstd', '--pin']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(blobGets(), blobsOf(idx.amd64Zstd));
    assert.ok(!registry.requests().some((q) => q.uri.endsWith(idx.amd64.manifestDigest)), 'the gzip amd64 manifest was not fetched');
    assert.ok(r.lines.some((l) => l.event === 'pin' && l.digest === idx.manifestDigest));
    const pins = await runCommand(process.execPath, [MAIN, 'pins', '--data', data]);
    assert.match(pins.stdout, new RegExp(`test/idx:1 ${idx.manifestDigest}`));
  });

  test('--from FILE with comments; failures are reported with reasons and exit code 1', async () => {
    const list = path.join(makeTempDir('stevedore-refs-').path, 'refs.txt');
    writeFileSync(list, '# images for the night shift\ntest/idx:1   # arm64 is cached already\n\ntest/missing:1\n');
    registry.clearRequests();
    const r = await prefetch(['--from', list, '--platform', 'linux/arm64']);
    assert.equal(r.code, 1);
    assert.equal(r.summary.ok, false);
    assert.deepEqual(
      r.summary.images.map((i) => [i.ref, i.ok]),
      [
        ['test/idx:1', true],
        ['test/missing:1', false],
      ],
    );
    assert.match(r.summary.failed.reasons[0]!.reason, /MANIFEST_UNKNOWN.*404/);
    assert.equal(blobGets().length, 0);
    // The platforms the index has are still fetched; the one it lacks fails the image, named.
    const s390 = await prefetch(['test/idx:1', '--platform', 'linux/arm64,linux/s390x']);
    assert.equal(s390.code, 1);
    assert.equal(s390.summary.cached.blobs, 3);
    assert.deepEqual(s390.summary.failed.reasons, [
      { ref: 'test/idx:1', reason: 'no manifest for platform linux/s390x in the index; it has linux/amd64, linux/arm64/v8' },
    ]);
    // An invalid ref is a usage error before anything runs: one line, exit 2.
    const bad = await runCommand(process.execPath, [MAIN, 'prefetch', '--data', data, 'test/idx:1', 'Bad//Ref'], { timeoutMs: 30_000 });
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, '');
    assert.match(bad.stderr, /^stevedore: prefetch: invalid image reference "Bad\/\/Ref": expected \[host\[:port\]\/\]repo\[:tag\|@digest\]/);
  });

  test('a prefetch beside a running serve on the same data dir: later pulls are cache hits', async () => {
    const dir = makeTempDir('stevedore-prefetch-serve-').path;
    const sd = await startStevedore({ dataDir: dir, upstreams: [proxy.url] });
    try {
      const r = await prefetch(['test/idx:1', '--platform', 'linux/arm64'], dir);
      assert.equal(r.code, 0, r.stderr);
      registry.clearRequests();
      for (const d of [idx.arm64.manifestDigest]) {
        const res = await fetch(`${sd.url}/v2/test/idx/manifests/${d}`, { headers: { accept: idx.arm64.manifestMediaType } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('x-stevedore-cache'), 'hit');
        await res.arrayBuffer();
      }
      for (const d of blobsOf(idx.arm64)) {
        const res = await fetch(`${sd.url}/v2/test/idx/blobs/${d}`);
        assert.equal(res.headers.get('x-stevedore-cache'), 'hit');
        assert.equal(
          `sha256:${createHash('sha256')
            .update(Buffer.from(await res.arrayBuffer()))
            .digest('hex')}`,
          d,
        );
      }
      assert.equal(blobGets().length, 0, 'serve needed nothing from upstream');
    } finally {
      await sd.stop();
    }
  });

  test('SIGKILL mid-download, re-run: the partial blob is resumed with Range, not restarted', async () => {
    const big = await pushBigLayer(registry.url, 'test/big', '1', 64);
    const layer = big.layers[0]!;
    const dir = makeTempDir('stevedore-prefetch-resume-').path;
    proxy.reset();
    const child = spawnTracked(process.execPath, [MAIN, 'prefetch', 'test/big:1', '--data', dir, '--upstream', proxy.url, '--rate', '16MB/s']);
    const size = () => partialSize(dir, layer.digest);
    await waitFor('half of the big layer on disk', () => size() > layer.size / 2, 20_000, 20);
    child.kill('SIGKILL');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    const kept = size();
    assert.ok(kept > 0 && kept < layer.size, `partial of ${kept} bytes kept`);
    const first = proxy.bytes(layer.digest);
    const r = await prefetch(['test/big:1'], dir);
    assert.equal(r.code, 0, r.stderr);
    const gets = proxy.requests().filter((q) => q.method === 'GET' && q.path.includes(layer.digest));
    const resume = gets.at(-1)!;
    assert.match(resume.range ?? '', /^bytes=\d+-$/, 'the re-run asked for the rest with Range');
    const offset = Number(/bytes=(\d+)-/.exec(resume.range!)![1]);
    assert.equal(offset, kept, 'resumed exactly where the kept partial ends');
    assert.equal(resume.bytes, layer.size - offset, 'the re-run downloaded only the rest');
    const total = proxy.bytes(layer.digest);
    const ratio = total / layer.size;
    console.log(`# resume: layer ${layer.size} B, first run ${first} B (kept ${kept}), total ${total} B, ratio ${ratio.toFixed(3)}`);
    // Above 1 only by what sat in socket buffers when the first run died; a restart would be over 1.5.
    assert.ok(ratio >= 1 && ratio < 1.25, `total upstream bytes ≈ layer size (ratio ${ratio.toFixed(3)})`);
    assert.equal(total, first + layer.size - kept, 'the kept bytes were not downloaded again');
    const file = path.join(dir, 'blobs', 'sha256', layer.digest.slice(7, 9), layer.digest.slice(7));
    assert.equal(`sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`, layer.digest);
  });

  test('SIGINT mid-download: summary and "re-run to resume"; the re-run counts only the bytes it actually fetched', async () => {
    const big = await pushBigLayer(registry.url, 'test/int', '1', 48);
    const layer = big.layers[0]!;
    const dir = makeTempDir('stevedore-prefetch-int-').path;
    const child = spawnTracked(process.execPath, [MAIN, 'prefetch', 'test/int:1', '--data', dir, '--upstream', proxy.url, '--rate', '16MB/s']);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const size = () => partialSize(dir, layer.digest);
    await waitFor('a third of the layer on disk', () => size() > layer.size / 3, 20_000, 20);
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    const summary = stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line)
      .find((l) => l.event === 'summary') as unknown as Summary & { interrupted: { blobs: number; bytes: number } };
    assert.ok(summary, stdout);
    assert.equal(summary.ok, false);
    assert.equal(summary.interrupted.blobs, 1);
    assert.ok(summary.interrupted.bytes > 0 && summary.interrupted.bytes < layer.size, JSON.stringify(summary.interrupted));
    assert.match(stderr, /^stevedore: prefetch interrupted: 1 blob\(s\) cut short, .+ of them kept; re-run the same command to resume\n$/m);
    const kept = size();
    assert.ok(kept > 0 && kept < layer.size, `partial of ${kept} bytes kept`);
    const before = proxy.bytes('/blobs/');
    const r = await prefetch(['test/int:1'], dir);
    assert.equal(r.code, 0, r.stderr);
    const resumed = (r.summary as unknown as { resumed: { blobs: number; bytes: number } }).resumed;
    assert.deepEqual(resumed, { blobs: 1, bytes: kept });
    // "fetched" is what came over the wire in this run, not the size of the blobs it completed.
    assert.equal(r.summary.fetched.bytes, proxy.bytes('/blobs/') - before);
    assert.ok(r.summary.fetched.bytes < layer.size);
  });

  test('--rate 5MB/s holds a ~20 MB image to within ±10 %', async () => {
    const img = await pushBigLayer(registry.url, 'test/rate', '1', 19);
    const layer = img.layers[0]!;
    proxy.reset();
    const rate = 5_000_000;
    const r = await prefetch(['test/rate:1', '--rate', '5MB/s'], makeTempDir('stevedore-prefetch-rate-').path);
    assert.equal(r.code, 0, r.stderr);
    const bytes = proxy.bytes('/blobs/');
    assert.ok(bytes >= layer.size);
    const achieved = bytes / r.summary.seconds;
    const wall = bytes / r.elapsed;
    console.log(
      `# rate: ${bytes} B in ${r.summary.seconds.toFixed(2)} s of prefetch (${(achieved / 1e6).toFixed(2)} MB/s), ${r.elapsed.toFixed(2)} s of process (${(wall / 1e6).toFixed(2)} MB/s)`,
    );
    assert.ok(Math.abs(achieved - rate) / rate <= 0.1, `achieved ${(achieved / 1e6).toFixed(2)} MB/s, want 5 MB/s ±10 %`);
    assert.ok(wall <= rate * 1.1, 'the whole process never went faster either');
  });
});
