// Unit tests of src/cache/blobs/pass-through.ts: the upstream body is pulled only as fast as the client reads
// (a client that does not read holds a few MiB, not the blob), and the bytes are verified.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { passThroughHandle } from '../../../../src/cache/blobs/pass-through.ts';
import { digestOf } from '../../../../src/oci/digest.ts';
import type { UpstreamResponse } from '../../../../src/upstream/client.ts';

test('pass-through: a client that does not read stops the upstream body after a few MiB; reading delivers every byte', async () => {
  const data = randomBytes(32 << 20);
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const res: UpstreamResponse = { status: 200, headers: { 'content-length': String(data.length) }, body: body as unknown as UpstreamResponse['body'] };
  const h = passThroughHandle({ first: res, resume: () => Promise.reject(new Error('no')) }, data.length, digestOf(data));
  const out = h.open() as import('node:stream').Transform;
  // Offer the upstream bytes as a socket would: stop when the stream says it is full.
  let offered = 0;
  const step = 256 << 10;
  const offer = async (): Promise<void> => {
    while (offered < data.length) {
      const more = body.write(data.subarray(offered, offered + step));
      offered += step;
      if (!more) return;
    }
    body.end();
  };
  await offer();
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  // The verifying stream holds its two high-water marks (1 MiB each) plus one chunk; the rest waits upstream.
  const held = out.readableLength + out.writableLength;
  assert.ok(held <= (2 << 20) + step, `${held} bytes held for a client that does not read`);
  assert.ok(offered < 8 << 20, `the upstream was asked for only ${offered} bytes`);
  const got: Buffer[] = [];
  out.on('drain', () => undefined);
  body.on('drain', () => void offer());
  for await (const c of out) got.push(c as Buffer);
  assert.equal(digestOf(Buffer.concat(got)), digestOf(data));
});
