// Unit tests of src/oci/referrers.ts: the referrers tag schema (the spec's examples), filtering, media types.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Digest } from '../../../src/oci/digest.ts';
import { EMPTY_REFERRERS, filterReferrers, isMediaType, referrersTag } from '../../../src/oci/referrers.ts';

test('referrersTag: the spec table (truncation to 32 and 64 characters, other characters as "-")', () => {
  assert.equal(referrersTag(`sha256:${'a'.repeat(64)}` as Digest), `sha256-${'a'.repeat(64)}`);
  assert.equal(referrersTag(`sha512:${'a'.repeat(128)}` as Digest), `sha512-${'a'.repeat(64)}`);
  const odd =
    'test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation';
  assert.equal(referrersTag(odd as Digest), 'test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot');
});

test('filterReferrers keeps matching descriptors and the rest of the index; non-indexes are undefined', () => {
  const idx = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ artifactType: 'a/b' }, { artifactType: 'c/d' }, {}],
      annotations: { x: '1' },
    }),
  );
  assert.deepEqual(JSON.parse(filterReferrers(idx, 'c/d')!.toString()), {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ artifactType: 'c/d' }],
    annotations: { x: '1' },
  });
  assert.equal(filterReferrers(Buffer.from('nope'), 'a/b'), undefined);
  assert.equal(filterReferrers(Buffer.from('{"layers":[]}'), 'a/b'), undefined);
  assert.deepEqual(JSON.parse(EMPTY_REFERRERS.toString()), { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] });
  assert.ok(isMediaType('application/vnd.dev.cosign.artifact.sig.v1+json'));
  for (const v of ['', 'nope', 'a/b/c', 'a /b', `a/${'b'.repeat(200)}`]) assert.equal(isMediaType(v), false, v);
});
