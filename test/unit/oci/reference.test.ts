// Unit tests of src/oci/reference.ts: repository name and tag grammar, references, host detection, image refs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isValidName, isValidTag, parseReference, looksLikeHost } from '../../../src/oci/reference.ts';

const d256 = `sha256:${'a'.repeat(64)}`;

test('names follow the distribution-spec grammar', () => {
  for (const ok of ['alpine', 'library/alpine', 'a/b/c', 'my-org/my_app', 'a__b', 'a.b-c', 'x/y---z']) assert.ok(isValidName(ok), ok);
  for (const bad of ['', 'Alpine', '/a', 'a/', 'a//b', 'a/../b', '..', 'a_', '-a', 'a/.b', 'a%2fb', 'a:b', 'x'.repeat(256)])
    assert.equal(isValidName(bad), false, bad);
});

test('tags and references', () => {
  assert.ok(isValidTag('latest') && isValidTag('_x') && isValidTag('v1.2.3-rc_1') && isValidTag('a'.repeat(128)));
  assert.equal(isValidTag('a'.repeat(129)), false);
  assert.equal(isValidTag('.hidden'), false);
  assert.equal(isValidTag('-x'), false);
  assert.deepEqual(parseReference('v1'), { kind: 'tag', tag: 'v1' });
  assert.deepEqual(parseReference(d256), { kind: 'digest', digest: d256 });
  assert.equal(parseReference('sha256:zz'), undefined);
  assert.equal(parseReference('a/b'), undefined);
});

test('host detection follows Docker reference normalisation', () => {
  assert.ok(looksLikeHost('ghcr.io') && looksLikeHost('localhost') && looksLikeHost('reg:5000'));
  assert.equal(looksLikeHost('library'), false);
});

test('image refs: host, port, tag, digest, default latest; invalid ones throw', async () => {
  const { parseImageRef } = await import('../../../src/oci/reference.ts');
  assert.deepEqual(parseImageRef('alpine'), { name: 'alpine', reference: { kind: 'tag', tag: 'latest' } });
  assert.deepEqual(parseImageRef('docker.io/library/alpine:3.20'), { name: 'docker.io/library/alpine', reference: { kind: 'tag', tag: '3.20' } });
  assert.deepEqual(parseImageRef('localhost:5000/app'), { name: 'localhost:5000/app', reference: { kind: 'tag', tag: 'latest' } });
  assert.deepEqual(parseImageRef(`ghcr.io/o/a@${d256}`), { name: 'ghcr.io/o/a', reference: { kind: 'digest', digest: d256 } });
  for (const bad of ['Alpine', 'a:', 'a@sha256:x', 'ghcr.io/', 'a/../b:1']) assert.throws(() => parseImageRef(bad), /invalid image reference/, bad);
});
