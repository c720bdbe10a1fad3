// Unit tests of src/http/ui/access.ts: the status page is open without an admin token; with one, only the token (Bearer, or Basic password) opens it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { canViewStatus } from '../../../../src/http/ui/access.ts';

const TOKEN = 'the-admin-token-0123';
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('canViewStatus', () => {
  test('no admin token configured: open to anyone', () => {
    assert.equal(canViewStatus(undefined, undefined), true);
    assert.equal(canViewStatus('Bearer whatever', undefined), true);
  });

  test('client authentication on and no admin token: closed to everyone', () => {
    assert.equal(canViewStatus(undefined, undefined, true), false);
    assert.equal(canViewStatus(basic('alice', 'pw'), undefined, true), false);
    assert.equal(canViewStatus(`Bearer ${TOKEN}`, TOKEN, true), true);
  });

  test('admin token: Bearer token or Basic password (any user) opens it; nothing else does', () => {
    assert.equal(canViewStatus(`Bearer ${TOKEN}`, TOKEN), true);
    assert.equal(canViewStatus(basic('admin', TOKEN), TOKEN), true);
    assert.equal(canViewStatus(basic('', TOKEN), TOKEN), true);
    for (const h of [undefined, '', 'Bearer', `Bearer ${TOKEN}x`, basic(TOKEN, 'x'), basic('admin', ''), `Token ${TOKEN}`, `Basic ${TOKEN}`])
      assert.equal(canViewStatus(h, TOKEN), false, String(h));
  });
});
