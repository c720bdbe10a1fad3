// Unit tests of src/upstream/token-auth.ts: parsing WWW-Authenticate challenges, registrable domains, and which token realms are allowed.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseChallenge, realmAllowed, registrableDomain } from '../../../src/upstream/token-auth.ts';

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
