// Unit tests of src/status.ts: pulls per repository (ordered, bounded in memory) and the last error per upstream.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LastErrors, PullCounter } from '../../src/status.ts';

describe('status data helpers', () => {
  test('PullCounter: most pulled first (ties by name), top N, at most 5000 repositories counted', () => {
    const p = new PullCounter();
    for (const [name, n] of [
      ['b', 2],
      ['a', 2],
      ['c', 5],
      ['d', 1],
    ] as const)
      for (let i = 0; i < n; i++) p.pull(name);
    assert.deepEqual(p.top(3), [
      { name: 'c', pulls: 5 },
      { name: 'a', pulls: 2 },
      { name: 'b', pulls: 2 },
    ]);
    for (let i = 0; i < 6000; i++) p.pull(`r${i}`);
    p.pull('c');
    assert.equal(p.top(10_000).length, 5000, 'new names beyond the bound are not counted');
    assert.deepEqual(p.top(1), [{ name: 'c', pulls: 6 }], 'known names still count');
  });

  test('LastErrors keeps the latest reason per upstream', () => {
    const e = new LastErrors();
    e.record('ghcr.io', 'network', 1);
    e.record('ghcr.io', '5xx', 2);
    assert.deepEqual(e.byUpstream.get('ghcr.io'), { reason: '5xx', at: 2 });
  });
});
