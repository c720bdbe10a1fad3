// Unit tests of src/cache/blobs/hit.ts: sendFile writes exact byte ranges from reused buffers and stops on a failed or closed sink.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { ByteSink } from '../../../../src/cache/blobs/handle.ts';
import { SEND_CHUNK, sendFile } from '../../../../src/cache/blobs/hit.ts';
import { makeTempDir } from '../../../helpers/tmp.ts';

const tmp = makeTempDir('stevedore-unit-hit-');
after(() => tmp.cleanup());
const bytes = randomBytes(3 * SEND_CHUNK + 12345);
const file = path.join(tmp.path, 'blob');
writeFileSync(file, bytes);

/** A sink that copies what it gets (the buffers are reused after `done`) and calls back asynchronously. */
function collector(opts: { failAt?: number } = {}): ByteSink & { got: Buffer[]; writes: number; closed: boolean } {
  const sink = {
    got: [] as Buffer[],
    writes: 0,
    closed: false,
    write(chunk: Buffer, done: (err?: Error | null) => void) {
      sink.writes++;
      sink.got.push(Buffer.from(chunk));
      setImmediate(() => done(sink.writes === opts.failAt ? new Error('EPIPE') : null));
    },
  };
  return sink;
}

test('sends exactly [start, end] for the whole file and for ranges, in chunks of at most SEND_CHUNK', async () => {
  const fh = await fsp.open(file, 'r');
  try {
    for (const [start, end] of [
      [0, bytes.length - 1],
      [0, 0],
      [SEND_CHUNK - 1, SEND_CHUNK],
      [100, 2 * SEND_CHUNK + 7],
      [bytes.length - 10, bytes.length - 1],
    ] as const) {
      const sink = collector();
      await sendFile(fh, sink, start, end);
      const out = Buffer.concat(sink.got);
      assert.ok(out.equals(bytes.subarray(start, end + 1)), `bytes ${start}-${end}`);
      assert.ok(sink.got.every((c) => c.length <= SEND_CHUNK));
    }
  } finally {
    await fh.close();
  }
});

test('a write that fails stops the send with that error', async () => {
  const fh = await fsp.open(file, 'r');
  try {
    const sink = collector({ failAt: 2 });
    await assert.rejects(sendFile(fh, sink, 0, bytes.length - 1), /EPIPE/);
    assert.ok(sink.writes < 4, 'no more than one further chunk after the failure');
  } finally {
    await fh.close();
  }
});

test('a closed client stops the send; a file shorter than its size is an error', async () => {
  const fh = await fsp.open(file, 'r');
  try {
    const sink = collector();
    const origWrite = sink.write;
    sink.write = (c, d) => {
      origWrite(c, d);
      sink.closed = true;
    };
    await assert.rejects(sendFile(fh, sink, 0, bytes.length - 1), /closed/);
    await assert.rejects(sendFile(fh, collector(), 0, bytes.length + 100), /shorter/);
  } finally {
    await fh.close();
  }
});
