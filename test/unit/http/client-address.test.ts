// clientAddressOf: the socket's address unless it is a trusted proxy; then the rightmost untrusted X-Forwarded-For hop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddressOf } from '../../../src/http/client-address.ts';
import { addressIn, cidrList } from '../../../src/upstream/cidr.ts';

const trusted = addressIn(cidrList(['127.0.0.1', '10.0.0.0/8']));

test('no trusted proxies, or a socket that is not one: X-Forwarded-For is ignored (a client cannot pick its address)', () => {
  assert.equal(clientAddressOf('203.0.113.9', '198.51.100.1', undefined), '203.0.113.9');
  assert.equal(clientAddressOf('203.0.113.9', '198.51.100.1', trusted), '203.0.113.9');
  assert.equal(clientAddressOf('::ffff:203.0.113.9', undefined, trusted), '203.0.113.9');
  assert.equal(clientAddressOf(undefined, undefined, trusted), 'unknown');
});

test('behind trusted proxies: the rightmost hop that is not one of them; what the client claimed further left is not believed', () => {
  assert.equal(clientAddressOf('127.0.0.1', '203.0.113.9', trusted), '203.0.113.9');
  // nginx appended the client's address to a header the client forged
  assert.equal(clientAddressOf('127.0.0.1', '1.2.3.4, 203.0.113.9', trusted), '203.0.113.9');
  // two proxy tiers (haproxy 10.0.0.5 in front of nginx on 127.0.0.1)
  assert.equal(clientAddressOf('127.0.0.1', '203.0.113.9, 10.0.0.5', trusted), '203.0.113.9');
  assert.equal(clientAddressOf('127.0.0.1', ' 203.0.113.9 ,::ffff:10.0.0.5', trusted), '203.0.113.9');
  // only proxies in the chain: the leftmost is as close to the client as is known
  assert.equal(clientAddressOf('127.0.0.1', '10.0.0.7, 10.0.0.5', trusted), '10.0.0.7');
  // a trusted proxy that forwarded nothing
  assert.equal(clientAddressOf('127.0.0.1', undefined, trusted), '127.0.0.1');
});
