// Unit tests of src/upstream/token-auth.ts: parsing WWW-Authenticate challenges, registrable domains, which token realms are
// allowed, and the token cache's byte bound.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AuthRefusedError, CHALLENGE_MAX, parseChallenge, realmAllowed, TOKEN_CACHE_BYTES, TokenAuth } from '../../../src/upstream/token-auth.ts';
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

  test('a challenge longer than CHALLENGE_MAX is refused (undefined), whatever it holds', () => {
    assert.ok(CHALLENGE_MAX >= 1024 && CHALLENGE_MAX <= 8192, String(CHALLENGE_MAX));
    // The audit's hostile headers: letters that never reach an '=' (the old regex rescanned them from every offset).
    for (const n of [16_000, 64_000]) assert.equal(parseChallenge(`Bearer ${'a'.repeat(n)}`), undefined, `${n} letters`);
    const realm = 'Bearer realm="https://r.example/token",service="r",scope="';
    assert.equal(parseChallenge(`${realm}${'x'.repeat(CHALLENGE_MAX)}"`), undefined, 'a valid but over-long challenge');
    assert.equal(parseChallenge(`${realm}${'x'.repeat(CHALLENGE_MAX - realm.length - 1)}"`)?.params.service, 'r', 'exactly CHALLENGE_MAX');
  });

  test('hostile input up to the cap is parsed as far as it is well-formed', () => {
    const n = CHALLENGE_MAX - 100;
    assert.deepEqual(parseChallenge(`Bearer ${'a'.repeat(n)}`), { scheme: 'bearer', params: {} });
    assert.deepEqual(parseChallenge(`Bearer realm="x",${'a'.repeat(n)}`)?.params, { realm: 'x' });
    assert.deepEqual(parseChallenge(`Bearer realm="${'\\"'.repeat(n / 4)}`)?.params, {}, 'an unterminated quoted string');
    assert.equal(parseChallenge(`Bearer ${'a='.repeat(n / 2)}`)?.params.a, 'a='.repeat(n / 2 - 1), 'an unquoted value runs to the next space or comma');
    assert.deepEqual(parseChallenge(`Bearer ${', '.repeat(n / 2)}realm="r"`)?.params, { realm: 'r' });
    assert.deepEqual(parseChallenge(`Bearer realm = "r" , service = s`)?.params, { realm: 'r', service: 's' }, 'spaces around = and ,');
  });
});

describe('TokenAuth.answer', () => {
  test('an over-long challenge is an unusable upstream answer: AuthRefusedError, and no token is fetched', async () => {
    const up: Upstream = { name: 'r.example', url: 'https://r.example', libraryPrefix: false };
    let fetched = 0;
    const auth = new TokenAuth(async () => {
      fetched++;
      return { status: 200, json: { token: 't' } };
    });
    await assert.rejects(auth.answer(up, `Bearer realm="https://r.example/token",${'a'.repeat(16_000)}`, 'repository:x:pull'), AuthRefusedError);
    assert.equal(await auth.answer(up, 'Bearer realm="https://r.example/token",service="r"', 'repository:x:pull'), 'Bearer t');
    assert.equal(fetched, 1);
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
