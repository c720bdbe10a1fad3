// Unit tests of src/oci/digest.ts: digest syntax (sha256, sha512) and incremental hashing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Hasher, digestOf, isDigest, parseDigest } from '../../../src/oci/digest.ts';

const d256 = `sha256:${'a'.repeat(64)}`;
const d512 = `sha512:${'b'.repeat(128)}`;

test('digests: sha256 and sha512 accepted, everything else refused', () => {
  assert.equal(parseDigest(d256)?.algorithm, 'sha256');
  assert.equal(parseDigest(d512)?.algorithm, 'sha512');
  for (const bad of [
    `sha256:${'a'.repeat(63)}`,
    `sha256:${'A'.repeat(64)}`,
    `sha512:${'b'.repeat(64)}`,
    `md5:${'a'.repeat(32)}`,
    'sha256:',
    '',
    `sha256:${'a'.repeat(64)}\n`,
    `../sha256:${'a'.repeat(64)}`,
  ]) {
    assert.equal(isDigest(bad), false, bad);
  }
});

test('hasher matches node crypto and digestOf, incrementally', () => {
  const data = Buffer.from('stevedore'.repeat(1000));
  const h = new Hasher('sha512');
  h.update(data.subarray(0, 10));
  h.update(data.subarray(10));
  assert.equal(h.digest(), `sha512:${createHash('sha512').update(data).digest('hex')}`);
  assert.equal(digestOf(data), `sha256:${createHash('sha256').update(data).digest('hex')}`);
});
