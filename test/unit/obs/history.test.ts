// Unit tests of src/obs/history.ts: per-minute traffic samples, zero minutes filled in, hits by cache outcome, a bounded ring.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrafficHistory } from '../../../src/obs/history.ts';

describe('TrafficHistory', () => {
  test('samples per minute with gaps as zeros; totals since start; cache outcomes count as hits', () => {
    let now = 10 * 60_000 + 5_000;
    const h = new TrafficHistory(5, () => now);
    h.served('miss', 1000);
    h.fetched(1000);
    h.served('hit', 500);
    now += 2 * 60_000;
    h.served('revalidated', 200);
    h.served('pass-through', 50);
    assert.deepEqual(h.samples(), [
      { t: 600_000, served: 1500, fetched: 1000, requests: 2, hits: 1 },
      { t: 660_000, served: 0, fetched: 0, requests: 0, hits: 0 },
      { t: 720_000, served: 250, fetched: 0, requests: 2, hits: 1 },
    ]);
    assert.deepEqual(h.total, { served: 1750, fetched: 1000, requests: 4, hits: 2 });
  });

  test('keeps only the last N minutes', () => {
    let now = 0;
    const h = new TrafficHistory(3, () => now);
    for (let m = 0; m < 10; m++) {
      now = m * 60_000;
      h.served('hit', m);
    }
    assert.deepEqual(
      h.samples().map((s) => s.served),
      [7, 8, 9],
    );
    assert.equal(h.total.served, 45);
  });
});
