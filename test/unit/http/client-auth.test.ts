// ClientAuth: first-match rules over who / upstream / repository globs, Basic (bcrypt) and token credentials, the failure limit.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import bcrypt from 'bcryptjs';
import { ClientAuth, type AccessRule } from '../../../src/http/client-auth.ts';
import type { OciError } from '../../../src/oci/errors.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const rule = (r: Partial<AccessRule> & { who: string[] }): AccessRule => ({ upstreams: ['*'], repositories: ['*'], action: 'allow', ...r });

function make(rules: AccessRule[], maxFailures = 3): ClientAuth {
  return new ClientAuth({
    users: new Map([['alice', bcrypt.hashSync('pw', 4)]]),
    tokens: new Map([[sha('tok-0123456789abcdef'), 'node-1']]),
    groupsOf: new Map([['node-1', ['nodes']]]),
    rules,
    maxFailures,
    failureWindowMs: 60_000,
  });
}

const code = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as OciError).code;
  }
};

describe('ClientAuth', () => {
  test('first match wins; globs span "/"; nothing matches: denied', () => {
    const a = make([
      rule({ who: ['alice'], repositories: ['team-a/secret'], action: 'deny' }),
      rule({ who: ['alice'], upstreams: ['ghcr.io'], repositories: ['team-a/*'] }),
      rule({ who: ['group:nodes'], upstreams: ['docker.io'] }),
      rule({ who: ['anonymous'], upstreams: ['docker.io'], repositories: ['library/*'] }),
    ]);
    const alice = { name: 'alice', groups: [] };
    const node = { name: 'node-1', groups: ['nodes'] };
    assert.equal(a.allows(alice, 'ghcr.io', 'team-a/secret'), false, 'the deny before it wins');
    assert.equal(a.allows(alice, 'ghcr.io', 'team-a/x/y'), true);
    assert.equal(a.allows(alice, 'ghcr.io', 'team-b/x'), false);
    assert.equal(a.allows(alice, 'docker.io', 'library/alpine'), false, 'anonymous rules are for the anonymous only');
    assert.equal(a.allows(node, 'docker.io', 'any/thing'), true);
    assert.equal(a.allows(node, 'ghcr.io', 'team-a/x'), false);
    assert.equal(a.allows('anonymous', 'docker.io', 'library/alpine'), true);
    assert.equal(a.allows('anonymous', 'docker.io', 'libraryX/alpine'), false, 'globs are anchored; "." and others are literal');
    assert.equal(a.anonymousAllowed, true);
    assert.throws(
      () => a.authorize('anonymous', 'ghcr.io', 'x'),
      (e: OciError) => e.code === 'UNAUTHORIZED' && e.headers['www-authenticate'] === 'Basic realm="stevedore"',
    );
    assert.throws(
      () => a.authorize(alice, 'ghcr.io', 'team-a/secret'),
      (e: OciError) => e.code === 'DENIED',
    );
  });

  test('Basic against bcrypt, tokens as Bearer or Basic password; wrong ones 401, then 429 per address', async () => {
    const a = make([rule({ who: ['*'] })]);
    assert.deepEqual(await a.authenticate(basic('alice', 'pw'), '10.0.0.1'), { name: 'alice', groups: [] });
    assert.deepEqual(await a.authenticate('Bearer tok-0123456789abcdef', '10.0.0.1'), { name: 'node-1', groups: ['nodes'] });
    assert.deepEqual(await a.authenticate(basic('whoever', 'tok-0123456789abcdef'), '10.0.0.1'), { name: 'node-1', groups: ['nodes'] });
    assert.equal(await a.authenticate(undefined, '10.0.0.1'), 'anonymous');
    for (const h of [basic('alice', 'nope'), basic('bob', 'pw'), 'Bearer nope']) assert.equal(await code(a.authenticate(h, '10.0.0.2')), 'UNAUTHORIZED');
    assert.equal(await code(a.authenticate(basic('alice', 'pw'), '10.0.0.2')), 'TOOMANYREQUESTS', 'blocked, even with the right password');
    assert.equal(await code(a.authenticate(basic('alice', 'pw'), '10.0.0.3')), 'ok', 'another address is not blocked');
  });

  test('guesses sent at once count one each: at most maxFailures password checks per address, then 429', async () => {
    const a = make([rule({ who: ['*'] })], 3);
    const codes = await Promise.all(Array.from({ length: 30 }, (_, i) => code(a.authenticate(basic('alice', `guess-${i}`), '10.0.0.4'))));
    assert.equal(codes.filter((c) => c === 'UNAUTHORIZED').length, 3, codes.join(' '));
    assert.equal(codes.filter((c) => c === 'TOOMANYREQUESTS').length, 27);
    assert.equal(await code(a.authenticate(basic('alice', 'pw'), '10.0.0.4')), 'TOOMANYREQUESTS', 'the right password is refused too');
  });

  test('one credential sent many times at once is checked once (not counted as many attempts)', async () => {
    const a = make([rule({ who: ['*'] })], 3);
    const codes = await Promise.all(Array.from({ length: 10 }, () => code(a.authenticate(basic('alice', 'pw'), '10.0.0.5'))));
    assert.deepEqual(new Set(codes), new Set(['ok']));
  });

  test('a user who does not exist is checked against a hash of the configured cost (not told apart by timing)', async (t) => {
    const a = new ClientAuth({
      users: new Map([
        ['alice', bcrypt.hashSync('pw', 4)],
        ['bob', bcrypt.hashSync('pw', 7)],
      ]),
      tokens: new Map(),
      groupsOf: new Map(),
      rules: [rule({ who: ['*'] })],
      maxFailures: 10,
      failureWindowMs: 60_000,
    });
    const compared: string[] = [];
    const real = bcrypt.compare;
    t.mock.method(bcrypt, 'compare', (pw: string, hash: string) => {
      compared.push(hash);
      return real(pw, hash);
    });
    assert.equal(await code(a.authenticate(basic('mallory', 'pw'), '10.0.0.6')), 'UNAUTHORIZED');
    assert.equal(compared.length, 1);
    assert.match(compared[0]!, /^\$2[aby]\$07\$/, 'the highest cost among the users');
  });
});
