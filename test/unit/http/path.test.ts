// Unit tests of src/http/path.ts: parseV2Path routes raw /v2/ paths and refuses traversal and encoded separators;
// dot segments anywhere; the path of an absolute-form target.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hasDotSegment, parseV2Path, targetPath } from '../../../src/http/path.ts';
import { OciError } from '../../../src/oci/errors.ts';

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof OciError && e.code === code;

describe('parseV2Path', () => {
  test('routes', () => {
    assert.deepEqual(parseV2Path('/v2/'), { kind: 'base' });
    assert.deepEqual(parseV2Path('/v2'), { kind: 'base' });
    assert.deepEqual(parseV2Path('/v2/a/b/manifests/v1'), { kind: 'manifests', name: 'a/b', reference: 'v1' });
    assert.deepEqual(parseV2Path('/v2/a/blobs/sha256:00'), { kind: 'blobs', name: 'a', reference: 'sha256:00' });
    assert.deepEqual(parseV2Path('/v2/a/b/tags/list'), { kind: 'tags', name: 'a/b' });
    assert.deepEqual(parseV2Path('/v2/a/b/referrers/sha256:x'), { kind: 'referrers', name: 'a/b', digest: 'sha256:x' });
    assert.deepEqual(parseV2Path('/v2/a/b/blobs/uploads/1234'), { kind: 'uploads', name: 'a/b' });
    assert.deepEqual(parseV2Path('/healthz'), { kind: 'other' });
  });

  test('the spec upload-start path /v2/<name>/blobs/uploads/ (trailing slash) is an upload route', () => {
    assert.deepEqual(parseV2Path('/v2/a/b/blobs/uploads/'), { kind: 'uploads', name: 'a/b' });
  });

  test('traversal, dot segments, empty segments and encoded separators are NAME_INVALID', () => {
    for (const p of [
      '/v2/a/../b/manifests/x',
      '/v2/../manifests/x',
      '/v2/a/./manifests/x',
      '/v2/a/%2e%2e/b/manifests/x',
      '/v2/a/%2E%2e/manifests/x',
      '/v2/a/%2e/manifests/x',
      '/v2/a%2Fb/manifests/x',
      '/v2/a%2fb/blobs/sha256:00',
      '/v2/a/%5C/manifests/x',
      '/v2/a%00/manifests/x',
      '/v2/a//b/manifests/x',
      '/v2/a/b/manifests/..',
      '/v2/a/b/manifests/%2e%2e',
      '/v2/a/%E0%A4%A/manifests/x',
    ]) {
      assert.throws(() => parseV2Path(p), isCode('NAME_INVALID'), p);
    }
  });
});

describe('hasDotSegment and targetPath', () => {
  test('"." and ".." segments, plain or percent-encoded, anywhere; dots inside a name are fine', () => {
    for (const p of ['/v2/../x', '/-/ui/./data', '/%2e%2E/healthz', '/v2/.%2e/', '/a/..']) assert.equal(hasDotSegment(p), true, p);
    for (const p of ['/v2/a/manifests/v1.2', '/v2/a.b/c', '/-/ui/', '/v2/...x/y', '/healthz']) assert.equal(hasDotSegment(p), false, p);
  });

  test('absolute form loses scheme and authority; the query goes', () => {
    assert.equal(targetPath('http://127.0.0.1:5000/v2/a/manifests/v1?ns=docker.io'), '/v2/a/manifests/v1');
    assert.equal(targetPath('HTTPS://host'), '/');
    assert.equal(targetPath('/v2/?x=1'), '/v2/');
    assert.equal(targetPath('/v2/http://x/y'), '/v2/http://x/y', 'only a target that starts with a scheme');
  });
});
