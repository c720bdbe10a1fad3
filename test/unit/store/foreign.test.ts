// Unit tests of src/store/foreign.ts: ForeignStore's URLs, repos, mirrors and URL health.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { digestOf } from '../../../src/oci/digest.ts';
import { ForeignStore } from '../../../src/store/foreign.ts';
import { Metadata } from '../../../src/store/metadata.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

describe('store and admin API', () => {
  const tmp = makeTempDir('stevedore-foreign-unit-');
  after(() => tmp.cleanup());
  const d1 = digestOf(Buffer.from('one'));

  test('ForeignStore: urls merged in order, repos, mirrors in insertion order, health counts consecutive failures', () => {
    const meta = new Metadata(`${tmp.path}/store.db`);
    const s = new ForeignStore(meta.db);
    s.record('up', 'a/b', [{ digest: d1, size: 3, mediaType: 'm', urls: ['https://x/1', 'https://x/2'], foreign: true }], 1);
    s.record('up', 'c/d', [{ digest: d1, size: 3, mediaType: 'm', urls: ['https://x/2', 'https://x/3'], foreign: true }], 2);
    const row = s.get(d1)!;
    assert.deepEqual(row.urls, ['https://x/1', 'https://x/2', 'https://x/3']);
    assert.deepEqual([row.firstSeen, row.lastSeen, row.status], [1, 2, 'unresolved']);
    assert.equal(s.seenIn(d1, 'up', 'a/b'), true);
    assert.equal(s.seenIn(d1, 'up', 'e/f'), false);
    assert.equal(s.addMirror(d1, 'https://m/2', 1), true);
    assert.equal(s.addMirror(d1, 'https://m/1', 2), true);
    assert.equal(s.addMirror(d1, 'https://m/2', 3), false);
    assert.deepEqual(s.mirrors(d1), ['https://m/2', 'https://m/1']);
    s.markFailure('https://x/1', 'boom', 5);
    s.markFailure('https://x/1', 'boom again', 6);
    assert.deepEqual([s.health('https://x/1').failures, s.health('https://x/1').lastError], [2, 'boom again']);
    s.markSuccess('https://x/1', 7);
    assert.equal(s.health('https://x/1').failures, 0);
    meta.putBlob(d1, 3);
    assert.equal(s.get(d1)!.status, 'cached');
    meta.close();
  });
});
