// Unit tests of src/upstream/token-auth.ts: parsing WWW-Authenticate challenges, registrable domains, which token realms are
// allowed, and the token cache's byte bound.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseChallenge, realmAllowed, TOKEN_CACHE_BYTES, TokenAuth } from '../../../src/upstream/token-auth.ts';
import type { Upstream } from '../../../src/upstream/types.ts';

describe('parseChallenge', () => {
  test('Bearer with quoted params, commas inside quotes, escapes, case-insensitive names', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull,push' },
    });
    assert.deepEqual(parseChallenge('bearer Realm="https://a/t", SERVICE="s", error="insufficient_scope"')?.params, {
      realm: 'https://a/t',
      service: 's',
      error: 'insufficient_scope',
    });
    assert.equal(parseChallenge('Bearer realm="a\\"b"')?.params.realm, 'a"b');
    assert.deepEqual(parseChallenge('Bearer realm=https://a/token,service=reg')?.params, { realm: 'https://a/token', service: 'reg' });
    assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.deepEqual(parseChallenge('Bearer'), { scheme: 'bearer', params: {} });
    assert.equal(parseChallenge(''), undefined);
  });
});

describe('realmAllowed', () => {
  const up = (url: string, realms?: string[]) => ({ url, ...(realms ? { realms } : {}) });
  test("a realm must be the upstream's own origin or listed in its realms, without userinfo", () => {
    assert.equal(realmAllowed(up('https://ghcr.io'), 'https://ghcr.io/token'), true);
    assert.equal(realmAllowed(up('http://127.0.0.1:5000'), 'http://127.0.0.1:5000/token'), true);
    assert.equal(realmAllowed(up('http://127.0.0.1:5000'), 'http://127.0.0.1:5001/token'), false, 'same IP, another port');
    assert.equal(realmAllowed(up('https://registry-1.docker.io'), 'https://auth.docker.io/token'), false, 'not listed');
    assert.equal(realmAllowed(up('https://registry-1.docker.io', ['https://auth.docker.io/token']), 'https://auth.docker.io/token'), true);
    assert.equal(realmAllowed(up('https://registry-1.docker.io', ['https://auth.docker.io/token']), 'http://auth.docker.io/token'), false, 'scheme differs');
    assert.equal(realmAllowed(up('https://registry-1.docker.io', ['https://auth.docker.io/token']), 'https://auth.docker.io/other'), false, 'path prefix');
    assert.equal(realmAllowed(up('https://registry-1.docker.io', ['https://auth.docker.io/token']), 'https://user:pw@auth.docker.io/token'), false);
    assert.equal(realmAllowed(up('https://registry-1.docker.io'), 'https://docker.io.evil.example/token'), false);
    assert.equal(realmAllowed(up('https://ghcr.io'), 'ftp://ghcr.io/token'), false);
    assert.equal(realmAllowed(up('https://ghcr.io'), 'not a url'), false);
    assert.equal(realmAllowed(up('https://123456789012.dkr.ecr.us-east-1.amazonaws.com'), 'https://evil-bucket.s3.amazonaws.com/token'), false);
    assert.equal(realmAllowed(up('https://mine.github.io'), 'https://evil.github.io/token'), false, 'another tenant of a shared domain');
  });
});

describe('token cache', () => {
  test('is bounded in bytes: 1,500 repositories with 60 KiB tokens keep at most TOKEN_CACHE_BYTES, the oldest evicted', async () => {
    const up: Upstream = { name: 'r.example', url: 'https://r.example', libraryPrefix: false };
    const challenge = 'Bearer realm="https://r.example/token",service="r"';
    let n = 0;
    const auth = new TokenAuth(async () => ({ status: 200, json: { token: `${n++}-`.padEnd(60 << 10, 't'), expires_in: 300 } }));
    for (let i = 0; i < 1_500; i++) await auth.answer(up, challenge, `repository:r${i}:pull`);
    assert.equal(n, 1_500);
    assert.ok(auth.cachedBytes <= TOKEN_CACHE_BYTES, `${auth.cachedBytes} bytes cached`);
    assert.ok(auth.cachedBytes >= TOKEN_CACHE_BYTES / 2, `${auth.cachedBytes} bytes cached: the bound is used, not a tiny one`);
    assert.equal(auth.cached(up, 'repository:r0:pull'), undefined, 'the oldest token was evicted');
    assert.match(auth.cached(up, 'repository:r1499:pull') ?? '', /^Bearer 1499-t/, 'the newest is kept');
  });
});
