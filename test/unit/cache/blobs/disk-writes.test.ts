// Unit tests of src/cache/blobs/disk-writes.ts: batching behind the running write, progress() vs drain(), errors.
import assert from 'node:assert/strict';
import type { promises as fsp } from 'node:fs';
import { test } from 'node:test';
import { BatchedWrites } from '../../../../src/cache/blobs/disk-writes.ts';

/** A file handle whose writev calls wait until the test ends (or fails) them, one by one. */
function fakeHandle() {
  const calls: { at: number; bytes: Buffer; done: () => void; fail: (e: Error) => void }[] = [];
  const handle = {
    writev(bufs: Buffer[], at: number) {
      const bytes = Buffer.concat(bufs);
      return new Promise((resolve, reject) => {
        calls.push({ at, bytes, done: () => resolve({ bytesWritten: bytes.length, buffers: bufs }), fail: reject });
      });
    },
  };
  return { handle: handle as unknown as fsp.FileHandle, calls };
}
const turn = () => new Promise((r) => setImmediate(r));

test('disk writes: chunks queued while a write runs go out as one batch; progress() waits for the running write only', async () => {
  const { handle, calls } = fakeHandle();
  let flushes = 0;
  const w = new BatchedWrites(handle, 0, () => flushes++);
  assert.equal(await Promise.race([w.progress().then(() => 'resolved'), turn().then(() => 'pending')]), 'resolved', 'no write runs: at once');
  w.queue(0, Buffer.from('aaaa'));
  await turn();
  assert.equal(calls.length, 1);
  w.queue(4, Buffer.from('bb'));
  w.queue(6, Buffer.from('ccc'));
  let progressed = false;
  let drained = false;
  void w.progress().then(() => (progressed = true));
  void w.drain().then(() => (drained = true));
  await turn();
  assert.equal(progressed, false, 'the first write still runs');
  calls[0]!.done();
  await turn();
  assert.equal(progressed, true, 'the running write ended: a download ahead of the disk may go on');
  assert.equal(drained, false, 'the batch queued behind it is still being written');
  assert.equal(w.flushed, 4);
  assert.equal(calls.length, 2, 'the queued chunks went out at once, as one write');
  assert.deepEqual({ at: calls[1]!.at, bytes: calls[1]!.bytes.toString() }, { at: 4, bytes: 'bbccc' });
  calls[1]!.done();
  await turn();
  assert.equal(drained, true);
  assert.equal(w.flushed, 9);
  assert.equal(flushes, 2);
});

test('disk writes: a failed write wakes progress(), and the next queue() and drain() report it', async () => {
  const { handle, calls } = fakeHandle();
  const w = new BatchedWrites(handle, 100, () => undefined);
  w.queue(100, Buffer.from('x'));
  await turn();
  const progressed = w.progress();
  calls[0]!.fail(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
  await progressed;
  assert.equal(w.flushed, 100, 'nothing counted as written');
  assert.throws(() => w.queue(101, Buffer.from('y')), /no space left/);
  await assert.rejects(w.drain(), /no space left/);
  await w.settled();
});
