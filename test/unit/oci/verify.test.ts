// Unit tests of src/oci/verify.ts: BlobVerifier (size cap and digest check) and VerifyingStream (hold-back of the last byte, ranges, mismatches).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { digestOf, type Digest } from '../../../src/oci/digest.ts';
import { BlobVerifier, DigestMismatchError, VerifyingStream } from '../../../src/oci/verify.ts';

const data = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789');
const digest = digestOf(data);
/** The same length as data, one byte different: only the digest can tell. */
const wrong = Buffer.from(data);
wrong[20] = 0x41;
/** data cut into chunks of n bytes (the last one shorter). */
const chunks = (b: Buffer, n: number): Buffer[] => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

describe('BlobVerifier', () => {
  test('the right bytes, in any chunking, pass whole; an unknown size checks only the digest', () => {
    for (const n of [1, 5, data.length]) {
      const v = new BlobVerifier(digest, data.length);
      for (const c of chunks(data, n)) v.update(c);
      assert.equal(v.received, data.length);
      assert.doesNotThrow(() => v.finish());
    }
    const sha512 = `sha512:${createHash('sha512').update(data).digest('hex')}` as Digest;
    const v = new BlobVerifier(sha512, undefined);
    for (const c of chunks(data, 7)) v.update(c);
    assert.doesNotThrow(() => v.finish());
  });

  test('a wrong digest fails at finish with DigestMismatchError naming the source', () => {
    const v = new BlobVerifier(digest, data.length, 'https://m.test/x');
    for (const c of chunks(wrong, 8)) v.update(c);
    assert.equal(v.received, data.length);
    assert.throws(
      () => v.finish(),
      (e: unknown) => e instanceof DigestMismatchError && e.message.includes('https://m.test/x') && e.message.includes(digestOf(wrong)),
    );
    const unsized = new BlobVerifier(digest, undefined);
    unsized.update(wrong);
    assert.throws(() => unsized.finish(), DigestMismatchError);
  });

  test('too many bytes fail at the update that goes past the size, and are not counted', () => {
    const v = new BlobVerifier(digest, data.length - 1);
    v.update(data.subarray(0, data.length - 1));
    assert.throws(
      () => v.update(data.subarray(data.length - 1)),
      (e: unknown) => e instanceof DigestMismatchError && /more than the 35 bytes/.test(e.message),
    );
    assert.equal(v.received, data.length - 1);
  });

  test('too few bytes fail at finish, even when the digest would not be checked yet', () => {
    const v = new BlobVerifier(digest, data.length);
    v.update(data.subarray(0, data.length - 1));
    assert.throws(
      () => v.finish(),
      (e: unknown) => e instanceof DigestMismatchError && /size 35 != 36/.test(e.message),
    );
    const empty = new BlobVerifier(digest, data.length);
    assert.throws(() => empty.finish(), DigestMismatchError);
  });
});

/** Collects what a stream has put out so far, and how it ended. */
function watch(s: VerifyingStream) {
  const w = { bytes: Buffer.alloc(0), ended: false, error: undefined as Error | undefined };
  s.on('data', (c: Buffer) => (w.bytes = Buffer.concat([w.bytes, c])));
  s.on('end', () => (w.ended = true));
  s.on('error', (e) => (w.error = e));
  return w;
}
/** Writes one chunk and waits until the stream took it (its callback ran, errors included) and its output was delivered. */
const write = async (s: VerifyingStream, c: Buffer) => {
  await new Promise<void>((r) => s.write(c, () => r()));
  await new Promise((r) => setImmediate(r));
};
/** Ends the stream and waits until it either ended or errored. */
const finish = (s: VerifyingStream) =>
  new Promise<void>((r) => {
    s.once('end', r);
    s.once('error', () => r());
    s.once('close', () => r());
    s.end();
  });

describe('VerifyingStream', () => {
  test('the whole body: every byte but the last goes out as it arrives; the last one only after end() verified it', async () => {
    const s = new VerifyingStream(digest, data.length);
    const w = watch(s);
    for (const c of chunks(data, 5)) {
      await write(s, c);
      assert.deepEqual(w.bytes, data.subarray(0, s.received - 1), `after ${s.received} bytes in`);
    }
    assert.equal(s.received, data.length);
    assert.deepEqual(w.bytes, data.subarray(0, data.length - 1), 'before end(): all but the final byte');
    assert.equal(w.ended, false);
    await finish(s);
    assert.deepEqual(w.bytes, data, 'after end(): the whole body');
    assert.equal(w.ended, true);
    assert.equal(w.error, undefined);
  });

  test('a range [start, end] puts out exactly those bytes, its last byte only after the whole body verified', async () => {
    const s = new VerifyingStream(digest, data.length, { start: 5, end: 14 });
    const w = watch(s);
    for (const c of chunks(data, 4)) await write(s, c);
    assert.deepEqual(w.bytes, data.subarray(5, 14), 'the whole body is in, but byte 14 waits for end()');
    assert.equal(w.ended, false);
    await finish(s);
    assert.deepEqual(w.bytes, data.subarray(5, 15));
    assert.equal(w.ended, true);
    assert.equal(w.error, undefined);
  });

  test('a one-byte range and a range to the end of the body', async () => {
    const one = new VerifyingStream(digest, data.length, { start: 7, end: 7 });
    const w1 = watch(one);
    for (const c of chunks(data, 3)) await write(one, c);
    assert.deepEqual(w1.bytes, Buffer.alloc(0));
    await finish(one);
    assert.deepEqual(w1.bytes, data.subarray(7, 8));
    const tail = new VerifyingStream(digest, data.length, { start: 30, end: data.length - 1 });
    const w2 = watch(tail);
    await write(tail, data);
    assert.deepEqual(w2.bytes, data.subarray(30, data.length - 1));
    await finish(tail);
    assert.deepEqual(w2.bytes, data.subarray(30));
    assert.equal(w2.ended, true);
  });

  test('a wrong digest: the stream errors with DigestMismatchError and never ends; the final byte never goes out', async () => {
    const s = new VerifyingStream(digest, data.length);
    const w = watch(s);
    for (const c of chunks(wrong, 6)) await write(s, c);
    await finish(s);
    assert.ok(w.error instanceof DigestMismatchError, String(w.error));
    assert.equal(w.ended, false);
    assert.deepEqual(w.bytes, wrong.subarray(0, wrong.length - 1));
  });

  test('a range of wrong bytes: its last byte never goes out, the stream errors', async () => {
    const s = new VerifyingStream(digest, data.length, { start: 0, end: 9 });
    const w = watch(s);
    for (const c of chunks(wrong, 6)) await write(s, c);
    assert.deepEqual(w.bytes, wrong.subarray(0, 9));
    await finish(s);
    assert.ok(w.error instanceof DigestMismatchError, String(w.error));
    assert.equal(w.ended, false);
    assert.deepEqual(w.bytes, wrong.subarray(0, 9));
  });

  test('too many bytes: the stream errors at the chunk that goes past the size, before putting any of it out', async () => {
    const s = new VerifyingStream(digest, data.length);
    const w = watch(s);
    await write(s, data);
    await write(s, Buffer.from('!'));
    assert.ok(w.error instanceof DigestMismatchError, String(w.error));
    assert.match(w.error.message, /more than the 36 bytes/);
    assert.equal(w.ended, false);
    assert.deepEqual(w.bytes, data.subarray(0, data.length - 1));
  });

  test('too few bytes: the stream errors at end() and never ends cleanly', async () => {
    const s = new VerifyingStream(digest, data.length);
    const w = watch(s);
    await write(s, data.subarray(0, 20));
    await finish(s);
    assert.ok(w.error instanceof DigestMismatchError, String(w.error));
    assert.match(w.error.message, /size 20 != 36/);
    assert.equal(w.ended, false);
    assert.deepEqual(w.bytes, data.subarray(0, 19));
  });
});
