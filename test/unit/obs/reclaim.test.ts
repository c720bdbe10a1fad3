// reclaimAfterBursts: one full GC when the connections of a burst have gone and garbage buffers or heap objects are above
// the floor; none while they stay.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reclaimAfterBursts } from '../../../src/obs/reclaim.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitLow(target: number): Promise<number> {
  for (let i = 0; i < 40 && process.memoryUsage().arrayBuffers > target; i++) await sleep(25);
  return process.memoryUsage().arrayBuffers;
}

interface Reclaimed {
  buffers: { before: number; after: number };
  heap: { before: number; after: number };
}

/**
 * A burst: 10 connections hold the garbage `make` returns (48 items); no GC may be forced while they stay. Then it
 * is dropped and the connections go: exactly one forced GC, whose figures are returned.
 */
async function burst(make: () => unknown[]): Promise<Reclaimed> {
  let conns = 10;
  const calls: Reclaimed[] = [];
  const r = reclaimAfterBursts({
    connections: () => conns,
    everyMs: 20,
    floorBytes: 16 << 20,
    minGapMs: 0,
    onReclaim: (before, after, heap) => calls.push({ buffers: { before, after }, heap }),
  });
  try {
    let held: unknown[] | undefined = make();
    await sleep(200);
    assert.equal(calls.length, 0, 'no GC while the connections stay');
    assert.equal(held.length, 48);
    held = undefined;
    conns = 0;
    await sleep(200);
    assert.equal(calls.length, 1, 'exactly one GC after the burst');
    return calls[0]!;
  } finally {
    r.stop();
  }
}

test('connections steady at their peak: no forced GC; once they fall away: one, which frees the garbage', async () => {
  // 48 MiB of buffers held by the burst's clients, dropped when they leave.
  const { before } = (await burst(() => Array.from({ length: 48 }, () => Buffer.alloc(1 << 20, 1)))).buffers;
  // Backing stores are released by V8's array-buffer sweeper shortly after the GC.
  const after = await waitLow(before - (40 << 20));
  assert.ok(before - after >= 40 << 20, `freed ${((before - after) / 2 ** 20).toFixed(0)} MiB`);
});

test('garbage JS objects (clients that pipelined and never read) count too: one GC frees them', async () => {
  // ~48 MiB of small objects held by the burst's requests, dropped when the clients leave.
  const { heap } = await burst(() =>
    Array.from({ length: 48 }, (_, i) => Array.from({ length: 16_000 }, (_, j) => ({ path: `/v2/a/manifests/${i}-${j}-${'x'.repeat(24)}`, n: j }))),
  );
  assert.ok(heap.before - heap.after >= 32 << 20, `freed ${((heap.before - heap.after) / 2 ** 20).toFixed(0)} MiB of heap`);
});

test('below the floor nothing is forced', async () => {
  let conns = 10;
  const calls: number[] = [];
  const r = reclaimAfterBursts({ connections: () => conns, everyMs: 20, floorBytes: 1 << 30, minGapMs: 0, onReclaim: (b) => calls.push(b) });
  try {
    conns = 0;
    await sleep(150);
    assert.equal(calls.length, 0);
  } finally {
    r.stop();
  }
});
