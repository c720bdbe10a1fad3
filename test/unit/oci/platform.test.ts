// Unit tests of src/oci/platform.ts: platform parsing and matching, and index entry selection by platform and compression.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parsePlatform, platformMatches, selectEntries } from '../../../src/oci/platform.ts';
import type { Descriptor } from '../../../src/oci/manifest.ts';

let n = 0;
const entry = (platform: Descriptor['platform'], zstd = false): Descriptor => ({
  digest: `sha256:${String(++n).padStart(64, '0')}` as Descriptor['digest'],
  size: 1,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  urls: [],
  kind: 'manifest',
  foreign: false,
  platform,
  ...(zstd ? { annotations: { 'io.containerd.image.compression': 'zstd' } } : {}),
});
const amd = entry({ os: 'linux', architecture: 'amd64' });
const amdZ = entry({ os: 'linux', architecture: 'amd64' }, true);
const arm = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
const armFeat = entry({ os: 'linux', architecture: 'arm64', features: ['zstd'] });
const att = entry({ os: 'unknown', architecture: 'unknown' });
const all = [amd, amdZ, arm, armFeat, att];

test('platforms parse and match with arm64 variant normalisation', () => {
  assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.throws(() => parsePlatform('linux'));
  assert.ok(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }));
  assert.ok(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }));
  assert.equal(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' }), false);
});

test('selection by platform and compression; attestations are never images', () => {
  const ids = (ds: Descriptor[]) => ds.map((d) => d.digest).sort();
  assert.deepEqual(ids(selectEntries(all, { platforms: [parsePlatform('linux/arm64')], compression: 'gzip' })), ids([arm]));
  assert.deepEqual(ids(selectEntries(all, { platforms: [parsePlatform('linux/amd64')], compression: 'zstd' })), ids([amdZ]));
  assert.deepEqual(ids(selectEntries(all, { platforms: [parsePlatform('linux/amd64')], compression: 'any' })), ids([amd, amdZ]));
  assert.deepEqual(ids(selectEntries(all, { compression: 'gzip' })), ids([amd, arm]));
  assert.deepEqual(ids(selectEntries(all, { compression: 'zstd' })), ids([amdZ, armFeat]));
  assert.deepEqual(ids(selectEntries([amd], { compression: 'zstd' })), ids([amd]), 'zstd falls back to what there is');
  assert.deepEqual(selectEntries(all, { platforms: [parsePlatform('windows/amd64')], compression: 'any' }), []);
});
