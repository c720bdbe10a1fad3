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
