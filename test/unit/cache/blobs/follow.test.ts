// Unit tests of src/cache/blobs/follow.ts: a follower pulls (reads only what its consumer asks for), so a client
// slower than the upstream holds a small fixed buffer, not the layer; a sendfile follower never sits on bytes on disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { read } from 'node:fs';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { BlobFill } from '../../../../src/cache/blobs/fill.ts';
import { digestOf } from '../../../../src/oci/digest.ts';
import { BlobStore } from '../../../../src/store/blob-store.ts';
import { Metadata } from '../../../../src/store/metadata.ts';
import type { UpstreamResponse } from '../../../../src/upstream/client.ts';
import { makeTempDir, waitFor } from '../../../helpers/tmp.ts';

const tmp = makeTempDir('stevedore-unit-');
const store = new BlobStore(tmp.path);
const meta = new Metadata(store.paths.db);
after(async () => {
  meta.close();
  await tmp.cleanup();
});
const readAt = promisify(read);
const deps = { store, meta, log: pino({ level: 'silent' }), maxResumes: 0 };

test('a follower that does not read while a 32 MiB fill completes buffers at most 2 MiB, then delivers every byte', async () => {
  const data = randomBytes(32 << 20);
  const digest = digestOf(data);
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const res: UpstreamResponse = { status: 200, headers: { 'content-length': String(data.length) }, body: body as unknown as UpstreamResponse['body'] };
  const fill = await BlobFill.start(deps, { first: res, resume: () => Promise.reject(new Error('no resume')) }, digest);
  const idle = fill.reader();
  const idleRange = fill.reader(1 << 20, (20 << 20) - 1);
  // The upstream sends everything; the fill hashes, writes and commits it while nobody reads.
  for (let o = 0; o < data.length; o += 256 << 10) {
    if (!body.write(data.subarray(o, o + (256 << 10)))) await new Promise((r) => body.once('drain', r));
  }
  body.end();
  await fill.settled;
  assert.equal(fill.state, 'done');
  await new Promise((r) => setImmediate(r));
  assert.ok(idle.readableLength <= 2 << 20, `the idle follower buffered ${idle.readableLength} bytes`);
  assert.ok(idleRange.readableLength <= 2 << 20, `the idle range follower buffered ${idleRange.readableLength} bytes`);
  // Once it reads, it gets exactly the bytes (from the fill's file, now the committed blob).
  const got: Buffer[] = [];
  for await (const c of idle) got.push(c as Buffer);
  assert.equal(digestOf(Buffer.concat(got)), digest);
  const part: Buffer[] = [];
  for await (const c of idleRange) part.push(c as Buffer);
  assert.deepEqual(Buffer.concat(part), data.subarray(1 << 20, 20 << 20));
});

test('a sendfile follower gets bytes already on disk while the upstream pauses, though fewer than it batches', async () => {
  const data = randomBytes(3 << 20);
  const digest = digestOf(data);
  const body = new PassThrough();
  const res: UpstreamResponse = { status: 200, headers: { 'content-length': String(data.length) }, body: body as unknown as UpstreamResponse['body'] };
  const fill = await BlobFill.start(deps, { first: res, resume: () => Promise.reject(new Error('no resume')) }, digest);
  // A sink that "sends" by reading the file range, as sendfile(2) would.
  const got: Buffer[] = [];
  const sink = {
    closed: false,
    write: () => assert.fail('a sendfile follower never copies through write()'),
    sendFile: async (fd: number, start: number, end: number) => {
      const buf = Buffer.alloc(end - start + 1);
      const { bytesRead } = await readAt(fd, buf, 0, buf.length, start);
      got.push(buf.subarray(0, bytesRead));
    },
  };
  const sent = fill.send(sink, 0, data.length - 1);
  const received = () => got.reduce((n, b) => n + b.length, 0);
  // The first bytes go at once; 300 KiB more right after (under the 1 MiB batch, within 100 ms of that send), then
  // the upstream stalls: those bytes must still reach the client, not wait for the upstream's next chunk.
  body.write(data.subarray(0, 64 << 10));
  await waitFor('the first 64 KiB sent', async () => received() >= 64 << 10 || undefined, 5000, 1);
  body.write(data.subarray(64 << 10, 364 << 10));
  await waitFor('the next 300 KiB sent while the upstream sends nothing', async () => received() >= 364 << 10 || undefined, 5000, 10);
  assert.equal(received(), 364 << 10);
  body.end(data.subarray(364 << 10));
  await sent;
  await fill.settled;
  assert.equal(digestOf(Buffer.concat(got)), digest);
});
