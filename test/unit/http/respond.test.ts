// Unit tests of src/http/respond.ts: parseRange of a Range header against the blob size.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRange } from '../../../src/http/respond.ts';

describe('parseRange', () => {
  test('single ranges against the size', () => {
    assert.deepEqual(parseRange('bytes=0-99', 1000), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=100-', 1000), { start: 100, end: 999 });
    assert.deepEqual(parseRange('bytes=990-2000', 1000), { start: 990, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-5000', 1000), { start: 0, end: 999 });
    assert.deepEqual(parseRange('bytes=999-999', 1000), { start: 999, end: 999 });
    assert.equal(parseRange(undefined, 1000), undefined);
    assert.equal(parseRange('bytes=0-1', undefined), undefined);
  });

  test('unsatisfiable or malformed ranges are invalid', () => {
    for (const v of ['bytes=1000-', 'bytes=5-4', 'bytes=-0', 'bytes=-', 'bytes=a-b', 'bytes=0-1,3-4']) assert.equal(parseRange(v, 1000), 'invalid', v);
    assert.equal(parseRange('bytes=0-', 0), 'invalid');
  });

  test('a suffix range of an empty blob is unsatisfiable (never a {start: 0, end: -1} range)', () => {
    assert.equal(parseRange('bytes=-5', 0), 'invalid');
  });
});
