// Unit tests of src/store/referrers.ts: rows per (upstream, repo, subject, filter), and the bound on their number.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import type { Digest } from '../../../src/oci/digest.ts';
import { Metadata } from '../../../src/store/metadata.ts';
import { ReferrersStore } from '../../../src/store/referrers.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

test('referrers rows: kept per repository and filter, updated in place, the oldest-checked pruned past the bound', async () => {
  const tmp = makeTempDir();
  const meta = new Metadata(path.join(tmp.path, 'metadata.db'));
  try {
    const store = new ReferrersStore(meta.db, 3);
    const d = (i: number) => `sha256:${String(i).padStart(64, '0')}` as Digest;
    const row = (t: number) => ({ body: Buffer.from(`{"n":${t}}`), source: 'api' as const, filters: '', checkedAt: t });
    store.put('up', 'a', d(1), '', row(1));
    store.put('up', 'a', d(1), 'x/y', { ...row(2), filters: 'artifactType' });
    assert.equal(store.get('up', 'b', d(1), ''), undefined, 'another repository sees nothing');
    assert.equal(store.get('up', 'a', d(1), 'x/y')?.filters, 'artifactType');
    store.put('up', 'a', d(1), '', row(5));
    assert.deepEqual(store.get('up', 'a', d(1), '')?.body, Buffer.from('{"n":5}'));
    store.put('up', 'a', d(2), '', row(3));
    store.put('up', 'a', d(3), '', row(4));
    assert.equal(store.get('up', 'a', d(1), 'x/y'), undefined, 'the oldest-checked row went');
    assert.ok(store.get('up', 'a', d(1), '') && store.get('up', 'a', d(2), '') && store.get('up', 'a', d(3), ''));
  } finally {
    meta.close();
    await tmp.cleanup();
  }
});

test('referrers rows: bounded in bytes too, the oldest-checked pruned past the bound', async () => {
  const tmp = makeTempDir();
  const meta = new Metadata(path.join(tmp.path, 'metadata.db'));
  try {
    // 10,000 bytes at most: ten lists of 3,000 bytes leave the newest three (the audit stored 80 lists of ~3 MB).
    const store = new ReferrersStore(meta.db, 1000, 10_000);
    const d = (i: number) => `sha256:${String(i).padStart(64, '0')}` as Digest;
    for (let i = 1; i <= 10; i++) store.put('up', 'a', d(i), '', { body: Buffer.alloc(3000, i), source: 'api', filters: '', checkedAt: i });
    const kept = Array.from({ length: 10 }, (_, i) => i + 1).filter((i) => store.get('up', 'a', d(i), '') !== undefined);
    assert.deepEqual(kept, [8, 9, 10]);
    // A list larger than the bound alone is not kept either (nothing else is pushed out for it).
    store.put('up', 'a', d(10), '', { body: Buffer.alloc(20_000), source: 'api', filters: '', checkedAt: 11 });
    assert.equal(store.get('up', 'a', d(10), ''), undefined, 'nor is the older answer served any more');
    assert.ok(store.get('up', 'a', d(8), '') && store.get('up', 'a', d(9), ''));
  } finally {
    meta.close();
    await tmp.cleanup();
  }
});
