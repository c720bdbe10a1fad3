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

test('connections steady at their peak: no forced GC; once they fall away: one, which frees the garbage', async () => {
  let conns = 10;
  const calls: [number, number][] = [];
  const r = reclaimAfterBursts({ connections: () => conns, everyMs: 20, floorBytes: 16 << 20, minGapMs: 0, onReclaim: (b, a) => calls.push([b, a]) });
  try {
    // 48 MiB of buffers held by the burst's clients, dropped when they leave.
    let held: Buffer[] | undefined = Array.from({ length: 48 }, () => Buffer.alloc(1 << 20, 1));
    await sleep(200);
    assert.equal(calls.length, 0, 'no GC while the connections stay');
    assert.equal(held.length, 48);
    held = undefined;
    conns = 0;
    await sleep(200);
    assert.equal(calls.length, 1, 'exactly one GC after the burst');
    // Backing stores are released by V8's array-buffer sweeper shortly after the GC.
    const [before] = calls[0]!;
    const after = await waitLow(before - (40 << 20));
    assert.ok(before - after >= 40 << 20, `freed ${((before - after) / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    r.stop();
  }
});

test('garbage JS objects (clients that pipelined and never read) count too: one GC frees them', async () => {
  let conns = 10;
  const calls: { before: number; after: number }[] = [];
  const r = reclaimAfterBursts({ connections: () => conns, everyMs: 20, floorBytes: 16 << 20, minGapMs: 0, onReclaim: (_b, _a, heap) => calls.push(heap) });
  try {
    // ~48 MiB of small objects held by the burst's requests, dropped when the clients leave.
    let held: { path: string; n: number }[][] | undefined = Array.from({ length: 48 }, (_, i) =>
      Array.from({ length: 16_000 }, (_, j) => ({ path: `/v2/a/manifests/${i}-${j}-${'x'.repeat(24)}`, n: j })),
    );
    await sleep(200);
    assert.equal(calls.length, 0, 'no GC while the connections stay');
    assert.equal(held.length, 48);
    held = undefined;
    conns = 0;
    await sleep(200);
    assert.equal(calls.length, 1, 'exactly one GC after the burst');
    assert.ok(calls[0]!.before - calls[0]!.after >= 32 << 20, `freed ${((calls[0]!.before - calls[0]!.after) / 2 ** 20).toFixed(0)} MiB of heap`);
  } finally {
    r.stop();
  }
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
