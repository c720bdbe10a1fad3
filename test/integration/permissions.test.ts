// Files and directories under --data are owner-only whatever the umask: blobs, temp/partial dirs, metadata.db + WAL.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream } from '../helpers/fake-upstream.ts';
import { startInProcess } from '../helpers/stevedore.ts';
import { makeTempDir, waitFor } from '../helpers/tmp.ts';

function walk(dir: string): string[] {
  return [dir, ...readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))];
}

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups) await c();
});

test('under umask 000 every file and directory under --data is created owner-only (0700 dirs, 0600 files)', async () => {
  const fake = await startFakeUpstream();
  cleanups.push(() => fake.stop());
  const bytes = randomBytes(20_000);
  const d = fake.addBlob('perm/x', bytes);
  const data = path.join((await makeTempDir('stevedore-perm-')).path, 'data');
  const old = process.umask(0);
  try {
    const sd = await startInProcess({ upstream: [fake.url], data });
    cleanups.push(() => sd.stop());
    const res = await request(`${sd.url}/v2/perm/x/blobs/${d}`);
    assert.equal(res.statusCode, 200);
    assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(bytes));
    // The response ends at verification; the commit (file + row) follows.
    await waitFor('the blob row', () => sd.meta.blobSize(d as never) !== undefined || undefined, 10_000, 20);
    const entries = walk(data);
    const names = entries.map((e) => path.relative(data, e));
    assert.ok(names.includes('metadata.db') && names.includes('metadata.db-wal'), names.join(' '));
    assert.ok(
      names.some((n) => n.startsWith('blobs/sha256/')),
      names.join(' '),
    );
    // A fill's lock file may go between the walk and its stat (the fill ends after the row): skip what is gone.
    const modeOf = (e: string): string | undefined => {
      try {
        return (statSync(e).mode & 0o777).toString(8);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const loose = entries.map((e) => [path.relative(data, e) || '.', modeOf(e)]).filter(([, m]) => m !== undefined && m !== '700' && m !== '600');
    assert.deepEqual(loose, []);
  } finally {
    process.umask(old);
  }
});
