// Unit tests of src/foreign/fetch.ts: the Verifier wrapper and the pass-through (cache: false) handle.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { DigestMismatchError } from '../../../src/oci/verify.ts';
import { passThroughHandle, Verifier } from '../../../src/foreign/fetch.ts';
import { digestOf } from '../../../src/oci/digest.ts';
import type { UpstreamResponse } from '../../../src/upstream/client.ts';
import type { SafeResponse } from '../../../src/upstream/safe-fetch.ts';

describe('verification', () => {
  const bytes = Buffer.from('x'.repeat(100_000));
  const digest = digestOf(bytes);
  const body = (b: Buffer) => Readable.from([b.subarray(0, 60_000), b.subarray(60_000)]) as unknown as UpstreamResponse['body'];
  const drain = async (it: AsyncIterable<unknown>) => {
    for await (const _ of it) void _;
  };

  test('Verifier: right bytes pass; wrong bytes or too many throw DigestMismatchError and report the URL', async () => {
    const verdicts: unknown[] = [];
    await drain(new Verifier(digest, bytes.length, (v) => verdicts.push(v)).wrap(body(bytes)) as unknown as AsyncIterable<unknown>);
    const wrong = Buffer.from(bytes);
    wrong[5] = 0x41;
    await assert.rejects(
      drain(new Verifier(digest, bytes.length, (v) => verdicts.push(v)).wrap(body(wrong)) as unknown as AsyncIterable<unknown>),
      DigestMismatchError,
    );
    await assert.rejects(
      drain(new Verifier(digest, bytes.length - 1, (v) => verdicts.push(v)).wrap(body(bytes)) as unknown as AsyncIterable<unknown>),
      DigestMismatchError,
    );
    assert.deepEqual(
      verdicts.map((v) => (v as { ok: boolean; mismatch?: boolean }).mismatch ?? 'ok'),
      ['ok', true, true],
    );
  });

  test('pass-through (cache: false): a range is served once verified; wrong bytes never end cleanly', async () => {
    const res = (b: Buffer): SafeResponse => ({ status: 200, headers: {}, body: body(b), url: 'http://m.test/x' });
    const ok = passThroughHandle(
      bytes.length,
      res(bytes),
      () => new Verifier(digest, bytes.length, () => undefined),
      async () => res(bytes),
    );
    const chunks: Buffer[] = [];
    for await (const c of ok.open(10, 59_999 + 10)) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bytes.subarray(10, 60_010)));
    const wrong = Buffer.from(bytes);
    wrong[99_999] = 0x41;
    const bad = passThroughHandle(
      bytes.length,
      res(wrong),
      () => new Verifier(digest, bytes.length, () => undefined),
      async () => res(wrong),
    );
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const c of bad.open()) got += (c as Buffer).length;
      })(),
      DigestMismatchError,
    );
    assert.ok(got < bytes.length);
  });
});
