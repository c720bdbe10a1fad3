// Unit tests of src/config/foreign.ts: the foreign: section (default deny all, refused CIDRs, regexes and matchers) and the admin token from env.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { foreignSchema } from '../../../src/config/foreign.ts';

describe('URL rules', () => {
  test('config: default deny all; bad CIDR, bad regex and a rule without a matcher are rejected; admin token from env', () => {
    assert.deepEqual(foreignSchema.parse(undefined).rules, []);
    assert.throws(() => foreignSchema.parse({ rules: [{ match: '*', action: 'fetch', allowPrivate: ['10.0.0.0/33'] }] }));
    assert.throws(() => foreignSchema.parse({ rules: [{ regex: '(', action: 'fetch' }] }));
    assert.throws(() => foreignSchema.parse({ rules: [{ action: 'fetch' }] }));
    assert.throws(() => foreignSchema.parse({ rules: [{ match: '*', regex: '.*', action: 'fetch' }] }));
    const c = loadConfig({}, { STEVEDORE_ADMIN_TOKEN: 'x'.repeat(20) });
    assert.equal(c.adminToken, 'x'.repeat(20));
    assert.deepEqual(c.foreign.rules, []);
  });
});
