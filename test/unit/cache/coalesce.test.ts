// Unit tests of src/cache/coalesce.ts: single-flight coalescing of concurrent callers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Coalescer } from '../../../src/cache/coalesce.ts';

test('coalescer: concurrent callers share one call; a later call runs anew', async () => {
  const c = new Coalescer<number>();
  let calls = 0;
  let release!: (v: number) => void;
  const fn = () => {
    calls++;
    return new Promise<number>((r) => (release = r));
  };
  const a = c.run('k', fn);
  const b = c.run('k', fn);
  assert.equal(a.joined, false);
  assert.equal(b.joined, true);
  release(7);
  assert.deepEqual(await Promise.all([a.promise, b.promise]), [7, 7]);
  assert.equal(c.size, 0);
  const d = c.run('k', async () => ++calls);
  assert.equal(await d.promise, 2);
});

test('coalescer: a rejection reaches every joined caller and clears the key', async () => {
  const c = new Coalescer<number>();
  const a = c.run('k', async () => {
    throw new Error('boom');
  });
  const b = c.run('k', async () => 1);
  await assert.rejects(a.promise, /boom/);
  await assert.rejects(b.promise, /boom/);
  assert.equal(c.has('k'), false);
});
