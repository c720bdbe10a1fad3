// Unit tests of src/cache/slots.ts: global and per-key caps, FIFO, and a key at its cap does not block others.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Slots } from '../../../src/cache/slots.ts';

test('slots: at most max at once and maxPerKey per key; the queue skips a key at its cap; release is idempotent', async () => {
  const slots = new Slots(3, 2);
  const got: string[] = [];
  const take = (key: string) =>
    slots.acquire(key).then((release) => {
      got.push(key);
      return release;
    });
  const a1 = take('a');
  const a2 = take('a');
  const a3 = take('a');
  const b1 = take('b');
  const b2 = take('b');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['a', 'a', 'b'], 'a3 waits for a (its cap), b1 passes it; b2 waits for the global cap');
  assert.equal(slots.queued, 2);
  const r1 = await a1;
  r1();
  r1();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['a', 'a', 'b', 'a'], 'first in line gets the slot');
  (await a2)();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(got, ['a', 'a', 'b', 'a', 'b']);
  assert.equal(slots.queued, 0);
  for (const p of [a3, b1, b2]) (await p)();
});
