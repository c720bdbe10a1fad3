// Unit tests of src/http/ranges.ts: planRange over RFC 9110 range headers, and the multipart/byteranges body.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { MAX_PARTS, multipartBody, planRange } from '../../../src/http/ranges.ts';

describe('planRange', () => {
  test('one range goes to the fast path; several to multipart; none satisfiable is 416', () => {
    assert.deepEqual(planRange('bytes=0-9', 100), { kind: 'single', header: 'bytes=0-9' });
    assert.deepEqual(planRange('Bytes = 0-9', 100), { kind: 'single', header: 'bytes=0-9' });
    assert.deepEqual(planRange('bytes=0-0,5-9,-10', 100), {
      kind: 'multi',
      parts: [
        { start: 0, end: 0 },
        { start: 5, end: 9 },
        { start: 90, end: 99 },
      ],
    });
    assert.deepEqual(planRange('bytes=0-0,,200-', 100), { kind: 'single', header: 'bytes=0-0' });
    assert.deepEqual(planRange('bytes=100-,200-300', 100), { kind: 'unsatisfiable' });
  });

  test('malformed, unknown units, overlapping, out of order, too many, unknown size: whole', () => {
    for (const v of ['bytes=abc', 'bytes=5-2', 'items=0-1', 'bytes', 'bytes=', 'bytes=-', 'bytes=0-9,5-20', 'bytes=10-19,0-1', 'bytes=0-1,x'])
      assert.deepEqual(planRange(v, 100), { kind: 'whole' }, v);
    const many = `bytes=${Array.from({ length: MAX_PARTS + 1 }, (_, i) => `${i * 2}-${i * 2}`).join(',')}`;
    assert.deepEqual(planRange(many, 1 << 20), { kind: 'whole' });
    assert.deepEqual(planRange('bytes=0-1,3-4', undefined), { kind: 'whole' });
  });
});

describe('multipartBody', () => {
  test('framing, Content-Length and bytes across chunk boundaries, one open() of the span', async () => {
    const blob = Buffer.from('0123456789abcdefghij');
    const opened: [number, number][] = [];
    const open = (s: number, e: number): Readable => {
      opened.push([s, e]);
      const span = blob.subarray(s, e + 1);
      return Readable.from([span.subarray(0, 3), span.subarray(3, 4), span.subarray(4)]);
    };
    const { headers, body } = multipartBody(
      open,
      [
        { start: 1, end: 2 },
        { start: 5, end: 5 },
        { start: 10, end: 19 },
      ],
      blob.length,
      'application/octet-stream',
    );
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    const out = Buffer.concat(chunks).toString();
    const b = /boundary=(\S+)$/.exec(headers['content-type']!)![1];
    const part = (r: string, bytes: string, first = false): string =>
      `${first ? '' : '\r\n'}--${b}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${r}/20\r\n\r\n${bytes}`;
    assert.equal(out, `${part('1-2', '12', true)}${part('5-5', '5')}${part('10-19', 'abcdefghij')}\r\n--${b}--\r\n`);
    assert.equal(headers['content-length'], String(Buffer.byteLength(out)));
    assert.deepEqual(opened, [[1, 19]]);
  });

  test('a source that ends early fails the body (never a clean end)', async () => {
    const { body } = multipartBody(
      () => Readable.from([Buffer.from('ab')]),
      [
        { start: 0, end: 0 },
        { start: 5, end: 6 },
      ],
      10,
      'application/octet-stream',
    );
    await assert.rejects(async () => {
      for await (const _ of body);
    });
  });
});
