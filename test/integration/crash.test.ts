// Crash safety: SIGKILL mid-fill then restart (resume, never partial), startup reconciliation, verify/--repair, CLI beside a live fill.
import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { request } from 'undici';
import { pushBigLayer, pushMultiLayer, type PushedImage } from '../helpers/images.ts';
import { pacedRelay } from '../helpers/paced-relay.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, sleep, waitFor, type TempDir } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const MiB = 1024 * 1024;

interface Body {
  status: number;
  bytes: number;
  digest: string;
  cache: string | undefined;
  error?: string;
}

/** GETs a URL and hashes the body; reading errors (a cut connection) are reported, not thrown. */
async function getHashed(url: string, onProgress?: (n: number) => Promise<void> | void): Promise<Body> {
  const res = await request(url, { headersTimeout: 30_000, bodyTimeout: 30_000 });
  const h = createHash('sha256');
  let bytes = 0;
  let error: string | undefined;
  try {
    for await (const chunk of res.body) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      await onProgress?.(bytes);
    }
  } catch (e) {
    error = (e as Error).message;
  }
  return { status: res.statusCode, bytes, digest: `sha256:${h.digest('hex')}`, cache: res.headers['x-stevedore-cache'] as string | undefined, error };
}

const cli = (...args: string[]) => runCommand(process.execPath, [MAIN, ...args, '--log-level', 'warn'], { timeoutMs: 60_000 });
const sha256File = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
const blobFile = (dataDir: string, digest: string) => path.join(dataDir, 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7));

describe('crash safety and store reconciliation', () => {
  let reg: Registry;
  let relay: Awaited<ReturnType<typeof pacedRelay>>;
  let big: PushedImage;
  let small: PushedImage;
  const dirs: TempDir[] = [];
  let sd: StevedoreProcess | undefined;
  const started: StevedoreProcess[] = [];
  const reqs = (digest: string) => reg.requests().filter((r) => r.method === 'GET' && r.uri.endsWith(`/blobs/${digest}`));
  const gets = (digest: string) => reqs(digest).length;
  /** Waits until the registry has logged `n` GETs of the digest, then a little longer to see that no more come. */
  const settled = async (digest: string, n: number) => {
    await waitFor(`${n} upstream GETs of ${digest}`, () => gets(digest) >= n, 10_000, 20);
    await sleep(300);
    return reqs(digest);
  };
  const settledGets = async (digest: string, n: number): Promise<number> => (await settled(digest, n)).length;
  const dataDir = (): string => {
    const d = makeTempDir('stevedore-crash-');
    dirs.push(d);
    return d.path;
  };

  before(async () => {
    reg = await startRegistry();
    big = await pushBigLayer(reg.url, 'test/crash', 'v1', 128);
    small = await pushMultiLayer(reg.url, 'test/small', 'v1', 3);
    relay = await pacedRelay(Number(reg.host.split(':')[1]), 96 * MiB);
  });
  after(async () => {
    await sd?.stop();
    for (const p of started) await p.stop();
    await relay?.close();
    await reg?.destroy();
    for (const d of dirs) await d.cleanup();
  });

  /** Starts a child stevedore on `dir`, GETs the big layer and SIGKILLs it once `offset` bytes reached the client. */
  async function crashAt(dir: string, offset: number): Promise<Body> {
    const crashing = await startStevedore({ upstreams: [relay.url], dataDir: dir });
    started.push(crashing);
    let killed = false;
    const cut = await getHashed(`${crashing.url}/v2/test/crash/blobs/${big.layers[0]!.digest}`, async (n) => {
      if (n >= offset && !killed) {
        killed = true;
        await crashing.kill9();
      }
    });
    assert.ok(killed, `killed at ${offset}`);
    return cut;
  }

  test('SIGKILL mid-fill at random offsets: restart resumes from the kept prefix, serves the whole verified blob, tmp/ empty', async () => {
    const layer = big.layers[0]!;
    const dir = dataDir();
    const partial = path.join(dir, 'partial', `sha256-${layer.digest.slice(7)}`);
    for (let i = 0; i < 3; i++) {
      const before = reqs(layer.digest).length;
      const offset = randomInt(1 * MiB, 96 * MiB);
      const cut = await crashAt(dir, offset);
      assert.equal(cut.status, 200);
      assert.ok(cut.bytes < layer.size && cut.error !== undefined, `iteration ${i}: the cut response is not a clean end (${cut.bytes} bytes)`);
      assert.equal(existsSync(blobFile(dir, layer.digest)), false, 'nothing committed');
      const kept = statSync(partial).size;
      assert.ok(kept > 0 && kept < layer.size, `the prefix is kept (${kept} bytes), never served`);
      await settled(layer.digest, before + 1); // the killed fill's GET, logged once the registry sees the cut

      sd = await startStevedore({ upstreams: [relay.url], dataDir: dir });
      assert.deepEqual(readdirSync(path.join(dir, 'tmp')), [], 'startup leaves no temp file');
      const whole = await getHashed(`${sd.url}/v2/test/crash/blobs/${layer.digest}`);
      assert.deepEqual(whole, { status: 200, bytes: layer.size, digest: layer.digest, cache: 'miss', error: undefined });
      const after = await settled(layer.digest, before + 2);
      assert.equal(after.length, before + 2, 'fetched again, once');
      assert.equal(after.at(-1)!.status, 206, 'the rest only, with Range');
      // The response ends at verification; the commit (fsync + rename of 128 MiB) follows, slower under load.
      await waitFor('the partial to become the cached blob', () => (!existsSync(partial) && existsSync(blobFile(dir, layer.digest))) || undefined, 20_000, 20);
      assert.equal(sha256File(blobFile(dir, layer.digest)), layer.digest);
      await sd.stop();
      sd = undefined;
      // Rows without files are dropped at the next start: removing the file makes the next iteration a miss again.
      rmSync(blobFile(dir, layer.digest));
    }
  });

  test('a prefix damaged by the crash is caught at the end: never a clean wrong answer; the next GET starts over', async () => {
    const layer = big.layers[0]!;
    const dir = dataDir();
    const partial = path.join(dir, 'partial', `sha256-${layer.digest.slice(7)}`);
    await crashAt(dir, randomInt(8 * MiB, 64 * MiB));
    const fd = openSync(partial, 'r+');
    writeSync(fd, Buffer.from('torn'), 0, 4, 4096);
    closeSync(fd);
    sd = await startStevedore({ upstreams: [relay.url], dataDir: dir });
    const before = reqs(layer.digest).length;
    const bad = await getHashed(`${sd.url}/v2/test/crash/blobs/${layer.digest}`);
    assert.ok(bad.error !== undefined && bad.bytes < layer.size, `never a clean end on wrong bytes (${bad.bytes})`);
    const metrics = `${sd.url}/metrics`;
    await waitFor('the failed fill to settle', async () => /^stevedore_fills_in_flight 0$/m.test(await (await fetch(metrics)).text()), 10_000, 50);
    const good = await getHashed(`${sd.url}/v2/test/crash/blobs/${layer.digest}`);
    assert.deepEqual(good, { status: 200, bytes: layer.size, digest: layer.digest, cache: 'miss', error: undefined });
    const log = await settled(layer.digest, before + 2);
    assert.deepEqual(
      log.slice(before).map((r) => r.status),
      [206, 200],
      'resumed, found wrong, then from the first byte',
    );
    await waitFor('the commit', () => existsSync(blobFile(dir, layer.digest)) || undefined, 20_000, 20);
    assert.equal(sha256File(blobFile(dir, layer.digest)), layer.digest);
    await sd.stop();
    sd = undefined;
  });

  test('operator commands on a live data dir (du, pins) leave a fill in progress alone', async () => {
    const layer = big.layers[0]!;
    sd = await startStevedore({ upstreams: [relay.url], dataDir: dataDir() });
    const before = gets(layer.digest);
    const ran: { code: number; stderr: string }[] = [];
    const got = await getHashed(`${sd.url}/v2/test/crash/blobs/${layer.digest}`, async (n) => {
      if (n >= 8 * MiB && ran.length === 0) {
        for (const cmd of ['du', 'pins']) ran.push(await cli(cmd, '--data', sd!.dataDir));
      }
    });
    assert.deepEqual(
      ran.map((r) => [r.code, r.stderr]),
      [
        [0, ''],
        [0, ''],
      ],
    );
    assert.deepEqual(got, { status: 200, bytes: layer.size, digest: layer.digest, cache: 'miss', error: undefined });
    assert.equal(await settledGets(layer.digest, before + 1), before + 1);
    assert.ok(existsSync(blobFile(sd.dataDir, layer.digest)), 'committed');
    await sd.stop();
    sd = undefined;
  });

  test('startup reconciliation: a row without its file is fetched again; a file without its row is adopted', async () => {
    const dir = dataDir();
    sd = await startStevedore({ upstreams: [reg.url], dataDir: dir });
    const blob = (s: StevedoreProcess, d: string) => getHashed(`${s.url}/v2/test/small/blobs/${d}`);
    for (const l of small.layers) assert.equal((await blob(sd, l.digest)).digest, l.digest);
    const [gone, orphan] = [small.layers[0]!, small.layers[1]!];
    await sd.stop();
    rmSync(blobFile(dir, gone.digest));
    const db = new Database(path.join(dir, 'metadata.db'));
    db.prepare('DELETE FROM blobs WHERE digest = ?').run(orphan.digest);
    db.close();
    const before = { gone: gets(gone.digest), orphan: gets(orphan.digest) };

    sd = await startStevedore({ upstreams: [reg.url], dataDir: dir });
    assert.match(sd.logs(), /"rowsDropped":1,"filesAdopted":1/);
    assert.deepEqual(await blob(sd, gone.digest), { status: 200, bytes: gone.size, digest: gone.digest, cache: 'miss', error: undefined });
    assert.deepEqual(await blob(sd, orphan.digest), { status: 200, bytes: orphan.size, digest: orphan.digest, cache: 'hit', error: undefined });
    assert.equal(await settledGets(gone.digest, before.gone + 1), before.gone + 1);
    assert.equal(gets(orphan.digest), before.orphan, 'the adopted file is served without asking upstream');
  });

  test('verify reports a corrupted blob with a non-zero exit; --repair removes it and the next GET fetches correct bytes', async () => {
    assert.ok(sd, "runs on the previous test's instance");
    const victim = small.layers[2]!;
    const file = blobFile(sd.dataDir, victim.digest);
    const bytes = readFileSync(file);
    const at = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
    writeFileSync(file, bytes);

    const check = await cli('verify', '--data', sd.dataDir);
    assert.notEqual(check.code, 0);
    assert.match(check.stdout, new RegExp(`^corrupt ${victim.digest} `, 'm'));
    assert.match(check.stdout, /: 1 corrupt/);
    assert.ok(existsSync(file), 'without --repair nothing is removed');

    const repair = await cli('verify', '--repair', '--data', sd.dataDir);
    assert.equal(repair.code, 0, repair.stderr);
    assert.match(repair.stdout, new RegExp(`^corrupt ${victim.digest} .*: removed$`, 'm'));
    assert.equal(existsSync(file), false);
    const before = gets(victim.digest);
    const again = await getHashed(`${sd.url}/v2/test/small/blobs/${victim.digest}`);
    assert.deepEqual(again, { status: 200, bytes: victim.size, digest: victim.digest, cache: 'miss', error: undefined });
    assert.equal(await settledGets(victim.digest, before + 1), before + 1);
    assert.equal((await cli('verify', '--data', sd.dataDir)).code, 0, 'clean again');
  });
});
