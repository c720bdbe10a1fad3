// Unit tests for oci/: digest, reference grammar, media types, manifest parsing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { Hasher, digestOf, isDigest, parseDigest } from '../../src/oci/digest.ts';
import { isValidName, isValidTag, parseReference, looksLikeHost } from '../../src/oci/reference.ts';
import { accepts, isForeignMediaType, MT } from '../../src/oci/media-types.ts';
import { parseManifest } from '../../src/oci/manifest.ts';
import { OciError } from '../../src/oci/errors.ts';

const d256 = `sha256:${'a'.repeat(64)}`;
const d512 = `sha512:${'b'.repeat(128)}`;

test('digests: sha256 and sha512 accepted, everything else refused', () => {
  assert.equal(parseDigest(d256)?.algorithm, 'sha256');
  assert.equal(parseDigest(d512)?.algorithm, 'sha512');
  for (const bad of [`sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `sha512:${'b'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'sha256:', '', `sha256:${'a'.repeat(64)}\n`, `../sha256:${'a'.repeat(64)}`]) {
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

test('names follow the distribution-spec grammar', () => {
  for (const ok of ['alpine', 'library/alpine', 'a/b/c', 'my-org/my_app', 'a__b', 'a.b-c', 'x/y---z']) assert.ok(isValidName(ok), ok);
  for (const bad of ['', 'Alpine', '/a', 'a/', 'a//b', 'a/../b', '..', 'a_', '-a', 'a/.b', 'a%2fb', 'a:b', 'x'.repeat(256)]) assert.equal(isValidName(bad), false, bad);
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

test('media types: foreign/non-distributable detection and Accept matching', () => {
  assert.ok(isForeignMediaType(MT.dockerForeignLayer));
  for (const s of ['', '+gzip', '+zstd']) assert.ok(isForeignMediaType(`application/vnd.oci.image.layer.nondistributable.v1.tar${s}`));
  assert.equal(isForeignMediaType('application/vnd.oci.image.layer.v1.tar+gzip'), false);
  assert.ok(accepts(undefined, MT.ociIndex));
  assert.ok(accepts(`${MT.dockerManifest}, ${MT.ociIndex};q=0.5`, MT.ociIndex));
  assert.equal(accepts(MT.dockerManifest, MT.ociIndex), false);
  assert.ok(accepts('*/*', MT.ociIndex));
});

const layer = (digest: string, extra: object = {}) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 10, ...extra });

test('manifest parsing lists config, layers (with urls) and subject, without changing anything', () => {
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MT.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d256, size: 2 },
    layers: [layer(d512, { mediaType: MT.dockerForeignLayer, urls: ['https://x/y'] })],
    subject: { mediaType: MT.ociManifest, digest: `sha256:${'c'.repeat(64)}`, size: 3 },
    weird: { field: 'kept' },
  }));
  const p = parseManifest(body, MT.ociManifest);
  assert.equal(p.mediaType, MT.ociManifest);
  assert.deepEqual(p.descriptors.map((d) => [d.digest, d.kind, d.foreign]), [[d256, 'blob', false], [d512, 'blob', true], [`sha256:${'c'.repeat(64)}`, 'manifest', false]]);
  assert.deepEqual(p.descriptors[1]!.urls, ['https://x/y']);
});

test('index parsing lists children as manifests with platforms', () => {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [{ mediaType: MT.ociManifest, digest: d256, size: 5, platform: { os: 'linux', architecture: 'arm64' } }] }));
  const p = parseManifest(body, `${MT.ociIndex}; charset=utf-8`);
  assert.equal(p.descriptors[0]!.kind, 'manifest');
  assert.equal(p.descriptors[0]!.platform?.architecture, 'arm64');
});

test('manifest parsing refuses ambiguity, mismatched media types, bad JSON and bad descriptors', () => {
  const expectInvalid = (body: unknown, ct: string) => assert.throws(() => parseManifest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), ct), (e: unknown) => e instanceof OciError && e.code === 'MANIFEST_INVALID');
  expectInvalid({ mediaType: MT.ociIndex, manifests: [] }, MT.ociManifest);
  expectInvalid({ manifests: [], layers: [] }, MT.ociIndex);
  expectInvalid('{not json', MT.ociManifest);
  expectInvalid('[1]', MT.ociManifest);
  expectInvalid({ layers: [layer('sha256:xyz')] }, MT.ociManifest);
  expectInvalid({ layers: [layer(d256, { size: -1 })] }, MT.ociManifest);
  expectInvalid('x'.repeat(4 * 1024 * 1024 + 1), MT.ociManifest);
});

test('errors carry the status of the OCI table and the envelope shape', () => {
  const e = new OciError('RANGE_INVALID', { size: 3 });
  assert.equal(e.status, 416);
  assert.deepEqual(e.toBody(), { errors: [{ code: 'RANGE_INVALID', message: 'invalid content range', detail: { size: 3 } }] });
  assert.equal(new OciError('TOOMANYREQUESTS').status, 429);
  assert.equal(new OciError('UNSUPPORTED').status, 405);
});

test('image refs: host, port, tag, digest, default latest; invalid ones throw', async () => {
  const { parseImageRef } = await import('../../src/oci/reference.ts');
  assert.deepEqual(parseImageRef('alpine'), { name: 'alpine', reference: { kind: 'tag', tag: 'latest' } });
  assert.deepEqual(parseImageRef('docker.io/library/alpine:3.20'), { name: 'docker.io/library/alpine', reference: { kind: 'tag', tag: '3.20' } });
  assert.deepEqual(parseImageRef('localhost:5000/app'), { name: 'localhost:5000/app', reference: { kind: 'tag', tag: 'latest' } });
  assert.deepEqual(parseImageRef(`ghcr.io/o/a@${d256}`), { name: 'ghcr.io/o/a', reference: { kind: 'digest', digest: d256 } });
  for (const bad of ['Alpine', 'a:', 'a@sha256:x', 'ghcr.io/', 'a/../b:1']) assert.throws(() => parseImageRef(bad), /invalid image reference/, bad);
});
