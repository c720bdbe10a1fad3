// Unit tests of src/jobs/bundle/layout.ts: which archive entries are blobs, and the destination of ref names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classifyEntry, destinationOf, parseFullRef } from '../../../../src/jobs/bundle/layout.ts';

const named = (ref: string) => ({ 'org.opencontainers.image.ref.name': ref });

test('entry names: only blobs/<alg>/<hex> of a valid digest is a blob; nothing else is used as a path', () => {
  const hex = 'a'.repeat(64);
  assert.deepEqual(classifyEntry(`./blobs/sha256/${hex}`), { kind: 'blob', digest: `sha256:${hex}` });
  assert.deepEqual(classifyEntry('index.json'), { kind: 'index' });
  assert.deepEqual(classifyEntry('./oci-layout'), { kind: 'layout' });
  assert.deepEqual(classifyEntry('blobs/sha256/'), { kind: 'directory' });
  assert.equal(classifyEntry(`blobs/sha256/${hex.slice(1)}`).kind, 'other');
  assert.equal(classifyEntry(`blobs/md5/${hex}`).kind, 'other');
  assert.equal(classifyEntry(`blobs/sha256/../../${hex}`).kind, 'other');
});

test('ref names: full refs keep host and repository; tags and short names need --name', () => {
  assert.deepEqual(parseFullRef('docker.io/library/alpine:3.20'), { name: 'docker.io/library/alpine', tag: '3.20' });
  assert.deepEqual(parseFullRef('127.0.0.1:5000/team/app'), { name: '127.0.0.1:5000/team/app' });
  assert.deepEqual(parseFullRef(`ghcr.io/org/app@sha256:${'b'.repeat(64)}`), { name: 'ghcr.io/org/app', digest: `sha256:${'b'.repeat(64)}` });
  assert.equal(parseFullRef('alpine:3.20'), undefined);
  assert.equal(parseFullRef('library/alpine'), undefined);
  assert.equal(parseFullRef('docker.io/Library/alpine'), undefined);
  // containerd's export: the tag in ref.name, the full name in io.containerd.image.name.
  assert.deepEqual(destinationOf({ 'org.opencontainers.image.ref.name': '3.20', 'io.containerd.image.name': 'docker.io/library/alpine:3.20' }, undefined), {
    name: 'docker.io/library/alpine',
    tag: '3.20',
  });
  assert.match(destinationOf(undefined, undefined) as string, /has no ref name annotation; give the destination with --name/);
  assert.deepEqual(destinationOf(named('alpine:3.20'), parseFullRef('docker.io/library/alpine')), { name: 'docker.io/library/alpine', tag: '3.20' });
});
