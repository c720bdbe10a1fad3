// Unit tests of src/foreign/policy.ts: URL rules (globs, regexes, first match wins, default deny), URL shape, mirror templates.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { checkUrlShape, expandMirror, ForeignPolicy, globToRegExp } from '../../../src/foreign/policy.ts';
import { foreignSchema } from '../../../src/config/foreign.ts';
import type { Digest } from '../../../src/oci/digest.ts';

const rules = (r: unknown[]) => foreignSchema.parse({ rules: r }).rules;

describe('URL rules', () => {
  test('globs: whole-URL globs keep * inside the authority; host-only globs; first match wins; default deny', () => {
    const re = globToRegExp('https://*.example.com/*');
    assert.ok(re.test('https://cdn.example.com/a/b/c'));
    for (const u of ['https://evil.test/.example.com/x', 'https://a.example.com.evil.test/x', 'https://a.example.com:8443/x', 'http://a.example.com/x']) {
      assert.equal(re.test(u), false, u);
    }
    const p = new ForeignPolicy(
      rules([
        { match: 'https://mirror.example/blocked/*', action: 'deny' },
        { match: 'https://mirror.example/*', action: 'fetch', cache: false },
        { match: '*.cdn.example', action: 'redirect' },
        { regex: '^http://10\\.1\\.2\\.3(:\\d+)?/', action: 'fetch', allowPrivate: ['10.1.2.3/32'] },
      ]),
    );
    assert.equal(p.decide('https://mirror.example/blocked/x').action, 'deny');
    assert.deepEqual([p.decide('https://mirror.example/x').action, p.decide('https://mirror.example/x').cache], ['fetch', false]);
    assert.equal(p.decide('https://a.cdn.example/x').action, 'redirect');
    assert.equal(p.decide('https://A.CDN.example/x').action, 'redirect');
    const priv = p.decide('http://10.1.2.3:8080/x');
    assert.equal(priv.action, 'fetch');
    assert.equal(priv.allowPrivate.check('10.1.2.3'), true);
    assert.match(p.decide('https://other.example/x').reason!, /no foreign\.rules entry matches/);
    assert.match(new ForeignPolicy([]).decide('https://mirror.example/x').reason!, /default: deny all/);
  });

  test('URL shape: only http(s), no userinfo, no fragment', () => {
    assert.ok(checkUrlShape('https://h.example/x?y=1') instanceof URL);
    assert.match(checkUrlShape('ftp://h.example/x') as string, /scheme/);
    assert.match(checkUrlShape('file:///etc/passwd') as string, /scheme/);
    assert.match(checkUrlShape('https://user:pw@h.example/x') as string, /userinfo/);
    assert.match(checkUrlShape('https://h.example/x#frag') as string, /fragment/);
    const p = new ForeignPolicy(rules([{ match: '*', action: 'fetch' }]));
    assert.equal(p.decide('https://user@h.example/x').action, 'deny');
  });

  test('mirror templates', () => {
    const d = `sha256:${'ab'.repeat(32)}` as Digest;
    assert.equal(expandMirror('https://m.example/{digest}', d), `https://m.example/${d}`);
    assert.equal(expandMirror('https://m.example/{algorithm}/{encoded}.tgz', d), `https://m.example/sha256/${'ab'.repeat(32)}.tgz`);
    assert.equal(expandMirror('https://m.example/blobs', d), `https://m.example/blobs/${d}`);
  });
});
