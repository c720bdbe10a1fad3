// Unit tests of src/upstream/retry-after.ts: an upstream's Retry-After (seconds or HTTP-date) read within 1..3600 s.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RETRY_AFTER_MAX_S, retryAfterSeconds } from '../../../src/upstream/retry-after.ts';

test('delta-seconds are clamped to 1..3600; HTTP-dates count from now; anything else is undefined', () => {
  assert.equal(RETRY_AFTER_MAX_S, 3600);
  const now = Date.parse('2026-03-01T12:00:00Z');
  const cases: [string | undefined, number | undefined][] = [
    ['120', 120],
    [' 7 ', 7],
    ['1', 1],
    ['0', 1],
    ['-5', 1],
    ['2.5', 3],
    ['99999999999', 3600],
    ['1e400', 3600],
    ['Sun, 01 Mar 2026 12:00:30 GMT', 30],
    ['Sun, 01 Mar 2026 14:00:00 GMT', 3600],
    ['Sun, 01 Mar 2026 11:00:00 GMT', 1],
    [undefined, undefined],
    ['', undefined],
    ['soon', undefined],
    ['12abc', undefined],
    ['Infinity', undefined],
    ['NaN', undefined],
  ];
  for (const [value, want] of cases) assert.equal(retryAfterSeconds(value, now), want, String(value));
});
