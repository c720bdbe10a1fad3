// A data dir on a small tmpfs (mounted by the test; needs root, as npm test runs): partial downloads count against
// --max-size and are swept oldest first, a full disk drops them, /readyz and metrics say the store refuses
// writes, misses pass through verified meanwhile, and caching resumes by itself once the disk has room again.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, rmSync, statfsSync, statSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, sha256 } from '../helpers/http.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { makeTempDir, waitFor, type TempDir } from '../helpers/tmp.ts';

/** Writes `file` until the file system refuses (ENOSPC): full, however much others write meanwhile. */
function fillUp(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(1 << 20, 0x5a);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

const partialFiles = (sd: InProcess): string[] => readdirSync(sd.store.paths.partialDir).filter((f) => !f.endsWith('.lock'));

describe('a small disk', () => {
  let fake: FakeUpstream;
  let mnt: TempDir;
  let sd: InProcess | undefined;

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a tmpfs: run it as root (npm test does)');
    fake = await startFakeUpstream();
    mnt = makeTempDir('stevedore-tmpfs-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt.path]);
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
    if (mnt) {
      execFileSync('umount', [mnt.path]);
      await mnt.cleanup();
    }
  });

  test('partial downloads count against --max-size and are evicted oldest first (gc), busy ones kept', async () => {
    const data = path.join(mnt.path, 'budget');
    sd = await startInProcess({ upstream: [fake.url], data, maxSize: '15MB' });
    const names = ['a', 'b', 'c'].map((n) => `sha256-${sha256(Buffer.from(n)).slice(7)}`);
    // Three interrupted downloads (as a crash or a cancelled fill leaves them), 6 MB each, a the oldest.
    names.forEach((n, i) => {
      const f = path.join(sd!.store.paths.partialDir, n);
      writeFileSync(f, randomBytes(6_000_000));
      utimesSync(f, new Date(Date.now() - (10 - i) * 60_000), new Date(Date.now() - (10 - i) * 60_000));
    });
    assert.equal(await sd.eviction.needed(), 18_000_000 - 15_000_000, 'partials count against the budget');
    const r = await sd.eviction.sweep();
    assert.deepEqual(
      r.evicted.map((e) => [e.kind, e.digest]),
      [['partial', names[0]!.replace('-', ':')]],
    );
    assert.deepEqual(partialFiles(sd).sort(), names.slice(1).sort());

    // A blob larger than the whole budget is never written: it streams through, verified, and leaves nothing.
    const big = randomBytes(16 << 20);
    const d = fake.addBlob('budget/x', big);
    const r1 = await get(`${sd.url}/v2/budget/x/blobs/${d}`);
    assert.equal(r1.status, 200);
    assert.equal(r1.headers['x-stevedore-cache'], 'pass-through');
    assert.equal(sha256(r1.body), d);
    assert.ok(!partialFiles(sd).some((f) => f.endsWith(d.slice(7)) && statSync(path.join(sd!.store.paths.partialDir, f)).size > 0));
    await sd.stop();
    sd = undefined;
    rmSync(data, { recursive: true, force: true });
  });

  test('a full disk: the partial goes, readyz and metrics say so, misses pass through, caching resumes when there is room', async () => {
    sd = await startInProcess({ upstream: [fake.url], data: path.join(mnt.path, 'full') });
    // Someone else's file leaves 14 MiB, then a 3 MiB download (it fits, with the 8 MiB margin, when it
    // starts: otherwise it would be streamed through from the start; the rest is slack for SQLite's WAL)...
    const filler = path.join(mnt.path, 'filler');
    const freeNow = (): number => {
      const fs = statfsSync(mnt.path);
      return fs.bavail * fs.bsize;
    };
    // Leave 14 MiB free, whatever else the file system holds.
    const free0 = freeNow();
    writeFileSync(filler, randomBytes(Math.max(0, free0 - (14 << 20))));
    const big = randomBytes(3 << 20);
    const d = fake.addBlob('disk/x', big);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 20 });
    const first = get(`${sd.url}/v2/disk/x/blobs/${d}`);
    // A fill is running (the room check is behind it: the disk must fill up after it, not before).
    await waitFor('the fill to start', async () => (sd!.proxy.blobs.fillsInFlight > 0 && fake.bytesSent(d) > 0) || undefined, 10_000, 10);
    // ...and while it runs, someone else fills the disk.
    const filler2 = path.join(mnt.path, 'filler2');
    // Every byte still free: the download cannot finish, however far it got. The fill keeps writing meanwhile,
    // so a filler sized from statfs can itself hit ENOSPC (seen in CI): write until the disk refuses instead.
    fillUp(filler2);
    const r1 = await first;
    assert.equal(r1.headers['x-stevedore-cache'], 'miss', `a fill, not a pass-through (${free0} bytes were free)`);
    assert.ok(r1.error !== undefined || r1.body.length < big.length, 'the fill that ran out of disk never ends cleanly');
    await waitFor('the fill to settle', async () => sd!.proxy.blobs.fillsInFlight === 0 || undefined, 10_000, 20);
    await waitFor(
      'the partial to be removed',
      async () => partialFiles(sd!).every((f) => statSync(path.join(sd!.store.paths.partialDir, f)).size === 0) || undefined,
      10_000,
      20,
    );
    fake.clearFault(d);

    const ready = JSON.parse((await get(`${sd.url}/readyz`)).body.toString()) as { cacheWritable: boolean; storeError?: string; diskFreeBytes?: number };
    assert.equal(ready.cacheWritable, false);
    assert.match(String(ready.storeError), /ENOSPC/);
    assert.ok(typeof ready.diskFreeBytes === 'number');
    assert.match((await get(`${sd.url}/metrics`)).body.toString(), /^stevedore_store_writable 0$/m);

    const through = await get(`${sd.url}/v2/disk/x/blobs/${d}`);
    assert.equal(through.status, 200);
    assert.equal(through.headers['x-stevedore-cache'], 'pass-through');
    assert.equal(sha256(through.body), d);
    assert.equal(sd.meta.blobSize(d as never), undefined);

    // The operator frees the disk: without a restart, the next miss is cached again.
    rmSync(filler);
    rmSync(filler2);
    const small = randomBytes(1 << 20);
    const s = fake.addBlob('disk/x', small);
    await waitFor(
      'caching to resume',
      async () => {
        const r = await get(`${sd!.url}/v2/disk/x/blobs/${s}`);
        assert.equal(sha256(r.body), s);
        return r.headers['x-stevedore-cache'] === 'miss' || undefined;
      },
      10_000,
      300,
    );
    await waitFor('the commit', async () => sd!.meta.blobSize(s as never) !== undefined || undefined, 10_000, 20);
    const after = JSON.parse((await get(`${sd.url}/readyz`)).body.toString()) as { cacheWritable: boolean };
    assert.equal(after.cacheWritable, true);
    assert.match((await get(`${sd.url}/metrics`)).body.toString(), /^stevedore_store_writable 1$/m);
  });
});
