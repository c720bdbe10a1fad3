// Unit tests for upstream selection and auth helpers, config parsing, raw /v2/ path parsing and Range parsing.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, parseUpstreamFlag } from '../../src/config/load.ts';
import { parseV2Path } from '../../src/http/path.ts';
import { parseRange } from '../../src/http/respond.ts';
import { OciError } from '../../src/oci/errors.ts';
import { Registries } from '../../src/upstream/registries.ts';
import { parseChallenge, realmAllowed, registrableDomain } from '../../src/upstream/token-auth.ts';

const isCode = (code: string) => (e: unknown): boolean => e instanceof OciError && e.code === code;

describe('parseChallenge', () => {
  test('Bearer with quoted params, commas inside quotes, escapes, case-insensitive names', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"'), {
      scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull,push' },
    });
    assert.deepEqual(parseChallenge('bearer Realm="https://a/t", SERVICE="s", error="insufficient_scope"')?.params, { realm: 'https://a/t', service: 's', error: 'insufficient_scope' });
    assert.equal(parseChallenge('Bearer realm="a\\"b"')?.params.realm, 'a"b');
    assert.deepEqual(parseChallenge('Bearer realm=https://a/token,service=reg')?.params, { realm: 'https://a/token', service: 'reg' });
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.deepEqual(parseChallenge('Bearer'), { scheme: 'bearer', params: {} });
    assert.equal(parseChallenge(''), undefined);
  });
});

describe('registrableDomain and realmAllowed', () => {
  test('registrable domains', () => {
    assert.equal(registrableDomain('registry-1.docker.io'), 'docker.io');
    assert.equal(registrableDomain('auth.docker.io'), 'docker.io');
    assert.equal(registrableDomain('AUTH.Docker.IO.'), 'docker.io');
    assert.equal(registrableDomain('a.b.example.co.uk'), 'example.co.uk');
    assert.equal(registrableDomain('127.0.0.1'), '127.0.0.1');
    assert.equal(registrableDomain('::1'), '::1');
    assert.equal(registrableDomain('localhost'), 'localhost');
  });

  test('private public suffixes (github.io, s3.amazonaws.com) are not one shared registrable domain', () => {
    assert.notEqual(registrableDomain('evil.github.io'), registrableDomain('mine.github.io'));
    assert.equal(realmAllowed('https://123456789012.dkr.ecr.us-east-1.amazonaws.com', 'https://evil-bucket.s3.amazonaws.com/token'), false);
  });

  test('a realm must be on the upstream registrable domain, https unless the upstream is http, without userinfo', () => {
    assert.equal(realmAllowed('https://registry-1.docker.io', 'https://auth.docker.io/token'), true);
    assert.equal(realmAllowed('https://ghcr.io', 'https://ghcr.io/token'), true);
    assert.equal(realmAllowed('http://127.0.0.1:5000', 'http://127.0.0.1:5001/token'), true);
    assert.equal(realmAllowed('https://registry-1.docker.io', 'http://auth.docker.io/token'), false, 'https upstream, http realm');
    assert.equal(realmAllowed('https://registry-1.docker.io', 'https://evil.example/token'), false);
    assert.equal(realmAllowed('https://registry-1.docker.io', 'https://docker.io.evil.example/token'), false);
    assert.equal(realmAllowed('https://registry-1.docker.io', 'https://user:pw@auth.docker.io/token'), false);
    assert.equal(realmAllowed('https://registry-1.docker.io', 'ftp://auth.docker.io/token'), false);
    assert.equal(realmAllowed('https://registry-1.docker.io', 'not a url'), false);
    assert.equal(realmAllowed('http://127.0.0.1:5000', 'http://127.0.0.2/token'), false);
    assert.equal(realmAllowed('https://a.example.co.uk', 'https://b.other.co.uk/token'), false);
  });
});

describe('Registries.resolve', () => {
  const cfg = loadConfig({ upstream: ['localhost:5000=http://127.0.0.1:5000'] }, {});
  const reg = new Registries(cfg.upstreams, cfg.defaultUpstream);
  const r = (name: string, ns?: string): [string, string] => {
    const t = reg.resolve(name, ns);
    return [t.upstream.name, t.repo];
  };

  test('default upstream docker.io with the library/ rule', () => {
    assert.deepEqual(r('alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('user/app'), ['docker.io', 'user/app']);
    assert.deepEqual(r('library/alpine'), ['docker.io', 'library/alpine']);
  });

  test('?ns= picks the upstream (aliases, case-insensitive); library/ only for docker.io', () => {
    assert.deepEqual(r('alpine', 'docker.io'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('alpine', 'index.docker.io'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('alpine', 'GHCR.IO'), ['ghcr.io', 'alpine']);
    assert.deepEqual(r('owner/img', 'ghcr.io'), ['ghcr.io', 'owner/img']);
    assert.deepEqual(r('x', ''), ['docker.io', 'library/x']);
  });

  test('a host-like first component picks the upstream and is stripped', () => {
    assert.deepEqual(r('ghcr.io/owner/img'), ['ghcr.io', 'owner/img']);
    assert.deepEqual(r('docker.io/alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('registry-1.docker.io/library/alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('localhost:5000/team/app'), ['localhost:5000', 'team/app']);
  });

  test('unconfigured hosts are DENIED (403), bad names NAME_INVALID', () => {
    for (const [name, ns] of [['x/y', 'evil.example'], ['evil.example/x'], ['localhost/x'], ['127.0.0.1:9/x'], ['x', 'localhost:5001']] as const) {
      assert.throws(() => reg.resolve(name, ns), (e) => isCode('DENIED')(e) && (e as OciError).status === 403, `${name} ns=${ns}`);
    }
    const noBuiltins = loadConfig({ upstream: ['http://127.0.0.1:5000'], config: yamlFile('builtinUpstreams: false') }, {});
    const only = new Registries(noBuiltins.upstreams, noBuiltins.defaultUpstream);
    assert.throws(() => only.resolve('ghcr.io/a/b', undefined), isCode('DENIED'));
    assert.deepEqual(only.resolve('alpine', undefined).repo, 'alpine');
    for (const bad of ['UPPER/case', 'a//b', '-a/b', 'ghcr.io/Owner/img', 'a/', '']) {
      assert.throws(() => reg.resolve(bad, undefined), isCode('NAME_INVALID'), bad);
    }
  });
});

function yamlFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'stevedore-unit-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  test('parseUpstreamFlag: URL -> default named host[:port]; NAME=URL -> named', () => {
    assert.deepEqual(parseUpstreamFlag('http://127.0.0.1:5000'), { name: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', isDefault: true });
    assert.deepEqual(parseUpstreamFlag('ghcr.io=https://mirror.example/ghcr'), { name: 'ghcr.io', url: 'https://mirror.example/ghcr', isDefault: false });
    assert.deepEqual(parseUpstreamFlag('https://m.example/a=b'), { name: 'm.example', url: 'https://m.example/a=b', isDefault: true });
    assert.throws(() => parseUpstreamFlag('nonsense'), ConfigError);
  });

  test('loadConfig errors name the offending key', () => {
    const cases: [string, () => unknown][] = [
      ['tagTtl', () => loadConfig({ config: yamlFile('tagTtl: abc') }, {})],
      ['tagTtl', () => loadConfig({}, { STEVEDORE_TAG_TTL: 'soon' })],
      ['timeouts.headers', () => loadConfig({ config: yamlFile('timeouts:\n  headers: -1') }, {})],
      ['retries', () => loadConfig({ config: yamlFile('retries: 11') }, {})],
      ['upstreams.foo.io.url', () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: ftp://x') }, {})],
      ['pasword', () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: https://x\n    pasword: y') }, {})],
      ['"foo"', () => loadConfig({ config: yamlFile('foo: 1') }, {})],
      ['defaultUpstream', () => loadConfig({ config: yamlFile('defaultUpstream: nope.io') }, {})],
      ['listen', () => loadConfig({ listen: 'nope' }, {})],
      ['logLevel', () => loadConfig({}, { STEVEDORE_LOG_LEVEL: 'loud' })],
      ['upstreams.foo.io.passwordFile', () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: https://x\n    passwordFile: /nonexistent/pw') }, {})],
    ];
    for (const [key, fn] of cases) {
      assert.throws(fn, (e) => e instanceof ConfigError && e.message.includes(key), key);
    }
  });

  test('credentials come from STEVEDORE_UPSTREAM_<NAME>_* env over the file', () => {
    const c = loadConfig({ upstream: ['http://127.0.0.1:5000'], config: yamlFile('upstreams:\n  127.0.0.1:5000:\n    url: http://x\n    username: file\n    password: filepw') }, {
      STEVEDORE_UPSTREAM_127_0_0_1_5000_USERNAME: 'env', STEVEDORE_UPSTREAM_DOCKER_IO_TOKEN: 'tok',
    });
    assert.deepEqual(c.upstreams['127.0.0.1:5000']?.credentials, { username: 'env', password: 'filepw', token: undefined });
    assert.equal(c.upstreams['127.0.0.1:5000']?.url, 'http://127.0.0.1:5000');
    assert.equal(c.upstreams['docker.io']?.credentials?.token, 'tok');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.upstreams));
  });
});

describe('parseV2Path', () => {
  test('routes', () => {
    assert.deepEqual(parseV2Path('/v2/'), { kind: 'base' });
    assert.deepEqual(parseV2Path('/v2'), { kind: 'base' });
    assert.deepEqual(parseV2Path('/v2/a/b/manifests/v1'), { kind: 'manifests', name: 'a/b', reference: 'v1' });
    assert.deepEqual(parseV2Path('/v2/a/blobs/sha256:00'), { kind: 'blobs', name: 'a', reference: 'sha256:00' });
    assert.deepEqual(parseV2Path('/v2/a/b/tags/list'), { kind: 'tags', name: 'a/b' });
    assert.deepEqual(parseV2Path('/v2/a/b/blobs/uploads/1234'), { kind: 'uploads', name: 'a/b' });
    assert.deepEqual(parseV2Path('/healthz'), { kind: 'other' });
  });

  test('the spec upload-start path /v2/<name>/blobs/uploads/ (trailing slash) is an upload route', () => {
    assert.deepEqual(parseV2Path('/v2/a/b/blobs/uploads/'), { kind: 'uploads', name: 'a/b' });
  });

  test('traversal, dot segments, empty segments and encoded separators are NAME_INVALID', () => {
    for (const p of ['/v2/a/../b/manifests/x', '/v2/../manifests/x', '/v2/a/./manifests/x', '/v2/a/%2e%2e/b/manifests/x', '/v2/a/%2E%2e/manifests/x',
      '/v2/a/%2e/manifests/x', '/v2/a%2Fb/manifests/x', '/v2/a%2fb/blobs/sha256:00', '/v2/a/%5C/manifests/x', '/v2/a%00/manifests/x',
      '/v2/a//b/manifests/x', '/v2/a/b/manifests/..', '/v2/a/b/manifests/%2e%2e', '/v2/a/%E0%A4%A/manifests/x']) {
      assert.throws(() => parseV2Path(p), isCode('NAME_INVALID'), p);
    }
  });
});

describe('parseRange', () => {
  test('single ranges against the size', () => {
    assert.deepEqual(parseRange('bytes=0-99', 1000), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=100-', 1000), { start: 100, end: 999 });
    assert.deepEqual(parseRange('bytes=990-2000', 1000), { start: 990, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', 1000), { start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-5000', 1000), { start: 0, end: 999 });
    assert.deepEqual(parseRange('bytes=999-999', 1000), { start: 999, end: 999 });
    assert.equal(parseRange(undefined, 1000), undefined);
    assert.equal(parseRange('bytes=0-1', undefined), undefined);
  });

  test('unsatisfiable or malformed ranges are invalid', () => {
    for (const v of ['bytes=1000-', 'bytes=5-4', 'bytes=-0', 'bytes=-', 'bytes=a-b', 'bytes=0-1,3-4']) assert.equal(parseRange(v, 1000), 'invalid', v);
    assert.equal(parseRange('bytes=0-', 0), 'invalid');
  });

  test('a suffix range of an empty blob is unsatisfiable (never a {start: 0, end: -1} range)', () => {
    assert.equal(parseRange('bytes=-5', 0), 'invalid');
  });
});
