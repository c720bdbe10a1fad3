// Unit tests of src/oci/manifest.ts: manifest and index parsing into descriptors, and what it refuses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MT } from '../../../src/oci/media-types.ts';
import { parseManifest } from '../../../src/oci/manifest.ts';
import { OciError } from '../../../src/oci/errors.ts';

const d256 = `sha256:${'a'.repeat(64)}`;
const d512 = `sha512:${'b'.repeat(128)}`;

const layer = (digest: string, extra: object = {}) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 10, ...extra });

test('manifest parsing lists config, layers (with urls) and subject, without changing anything', () => {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: d256, size: 2 },
      layers: [layer(d512, { mediaType: MT.dockerForeignLayer, urls: ['https://x/y'] })],
      subject: { mediaType: MT.ociManifest, digest: `sha256:${'c'.repeat(64)}`, size: 3 },
      weird: { field: 'kept' },
    }),
  );
  const p = parseManifest(body, MT.ociManifest);
  assert.equal(p.mediaType, MT.ociManifest);
  assert.deepEqual(
    p.descriptors.map((d) => [d.digest, d.kind, d.foreign]),
    [
      [d256, 'blob', false],
      [d512, 'blob', true],
      [`sha256:${'c'.repeat(64)}`, 'manifest', false],
    ],
  );
  assert.deepEqual(p.descriptors[1]!.urls, ['https://x/y']);
});

test('index parsing lists children as manifests with platforms', () => {
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociIndex,
      manifests: [{ mediaType: MT.ociManifest, digest: d256, size: 5, platform: { os: 'linux', architecture: 'arm64' } }],
    }),
  );
  const p = parseManifest(body, `${MT.ociIndex}; charset=utf-8`);
  assert.equal(p.descriptors[0]!.kind, 'manifest');
  assert.equal(p.descriptors[0]!.platform?.architecture, 'arm64');
});

test('manifest parsing refuses ambiguity, mismatched media types, bad JSON and bad descriptors', () => {
  const expectInvalid = (body: unknown, ct: string) =>
    assert.throws(
      () => parseManifest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), ct),
      (e: unknown) => e instanceof OciError && e.code === 'MANIFEST_INVALID',
    );
  expectInvalid({ mediaType: MT.ociIndex, manifests: [] }, MT.ociManifest);
  expectInvalid({ manifests: [], layers: [] }, MT.ociIndex);
  expectInvalid('{not json', MT.ociManifest);
  expectInvalid('[1]', MT.ociManifest);
  expectInvalid({ layers: [layer('sha256:xyz')] }, MT.ociManifest);
  expectInvalid({ layers: [layer(d256, { size: -1 })] }, MT.ociManifest);
  expectInvalid('x'.repeat(4 * 1024 * 1024 + 1), MT.ociManifest);
});
