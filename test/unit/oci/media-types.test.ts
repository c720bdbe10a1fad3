// Unit tests of src/oci/media-types.ts: foreign/non-distributable layer detection and Accept matching.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { accepts, DEFAULT_ACCEPT, isForeignMediaType, MT, upstreamAccept } from '../../../src/oci/media-types.ts';

test('media types: foreign/non-distributable detection and Accept matching', () => {
  assert.ok(isForeignMediaType(MT.dockerForeignLayer));
  for (const s of ['', '+gzip', '+zstd']) assert.ok(isForeignMediaType(`application/vnd.oci.image.layer.nondistributable.v1.tar${s}`));
  assert.equal(isForeignMediaType('application/vnd.oci.image.layer.v1.tar+gzip'), false);
  assert.ok(accepts(undefined, MT.ociIndex));
  assert.ok(accepts(`${MT.dockerManifest}, ${MT.ociIndex};q=0.5`, MT.ociIndex));
  assert.equal(accepts(MT.dockerManifest, MT.ociIndex), false);
  assert.ok(accepts('*/*', MT.ociIndex));
});

test('upstreamAccept: absent or wildcard Accept becomes the full manifest list; a specific list is kept', () => {
  for (const a of [undefined, '', '*/*', 'application/*', `${MT.dockerManifest}, */*;q=0.1`]) assert.equal(upstreamAccept(a), DEFAULT_ACCEPT, String(a));
  for (const t of [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest]) assert.ok(DEFAULT_ACCEPT.includes(t));
  assert.equal(upstreamAccept(MT.dockerManifest), MT.dockerManifest);
});
