// Unit tests of src/upstream/safe-fetch.ts: the address guard (with cidr allow lists) and safeFetch against a local server.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { cidrList } from '../../../src/upstream/cidr.ts';
import { addressRefusal, FetchError, RefusedError, safeFetch, type SafeFetchOptions, type SafeResponse } from '../../../src/upstream/safe-fetch.ts';

describe('address guard', () => {
  const none = cidrList([]);
  test('loopback, private, link-local, multicast, unspecified (also inside IPv6) are refused; public is not', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '224.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '2002:7f00:1::1',
    ]) {
      assert.ok(addressRefusal(a, none), a);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(addressRefusal(a, none), undefined, a);
  });

  test('IPv6 forms that embed an IPv4 address or are for local use only: local-use NAT64, IPv4-translated, Teredo', () => {
    for (const a of [
      '64:ff9b:1::1', // RFC 8215 local-use NAT64 (/48): any prefix length within it, so any embedded position
      '64:ff9b:1:7f00:1::',
      '64:ff9b:1::a9fe:a9fe',
      '64:ff9b:1:ffff:ffff:ffff:ffff:ffff',
      '::ffff:0:7f00:1', // RFC 2765 IPv4-translated ::ffff:0:0:0/96, here 127.0.0.1
      '::ffff:0:10.0.0.1',
      '::ffff:0:a9fe:a9fe',
      '2001:0:4136:e378:8000:63bf:3fff:fdd2', // Teredo 2001::/32: server and (obfuscated) client IPv4 inside
      '2001::1',
      '2001:0:ffff:ffff:ffff:ffff:ffff:ffff',
      '2001:2::1', // benchmarking 2001:2::/48, like 198.18.0.0/15
    ]) {
      assert.ok(addressRefusal(a, none), a);
    }
    // Neighbours that are public: the well-known NAT64 prefix and IPv4-translated with a public IPv4 inside, and
    // global unicast next to Teredo (Google's public DNS is 2001:4860::/32).
    for (const a of ['64:ff9b::808:808', '64:ff9b:2::1', '::ffff:0:808:808', '2001:4860:4860::8888', '2001:1::1', '2001:3::1']) {
      assert.equal(addressRefusal(a, none), undefined, a);
    }
    // allowPrivate opens them like any other range: the IPv4 inside, or the IPv6 range itself.
    assert.equal(addressRefusal('::ffff:0:7f00:1', cidrList(['127.0.0.0/8'])), undefined);
    assert.equal(addressRefusal('64:ff9b:1::a00:1', cidrList(['64:ff9b:1::/48'])), undefined);
    assert.equal(addressRefusal('2001::1', cidrList(['2001::/32'])), undefined);
  });

  test('allowPrivate opens exactly its ranges', () => {
    const allow = cidrList(['127.0.0.0/8', 'fd00::/8']);
    assert.equal(addressRefusal('127.0.0.2', allow), undefined);
    assert.equal(addressRefusal('::ffff:127.0.0.1', allow), undefined);
    assert.equal(addressRefusal('fd12::1', allow), undefined);
    assert.ok(addressRefusal('10.0.0.1', allow));
    assert.ok(addressRefusal('169.254.169.254', allow));
  });
});

describe('safeFetch against a local server', () => {
  let server: Server;
  let port: number;
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      if (req.url === '/hang') return; // never answers: the header timeout must end it
      if (req.url?.startsWith('/to/')) {
        res.writeHead(302, { location: decodeURIComponent(req.url.slice(4)) });
        return res.end();
      }
      if (req.url === '/loop') {
        res.writeHead(302, { location: '/loop' });
        return res.end();
      }
      res.writeHead(200, { 'content-length': '5' });
      res.end('hello');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  const opts = (allow: string[], extra: Partial<SafeFetchOptions> = {}): SafeFetchOptions => ({
    method: 'GET',
    authorize: (u) => (u.pathname.startsWith('/denied') ? { refused: 'denied by test rule' } : { allowPrivate: cidrList(allow) }),
    timeouts: { connect: 2_000, headers: 300, bodyIdle: 2_000 },
    maxRedirects: 3,
    resolve: async () => [{ address: '127.0.0.1', family: 4 }],
    ...extra,
  });
  const text = async (r: SafeResponse) => Buffer.from(await r.body.arrayBuffer()).toString();

  test('a name that resolves to loopback is refused before any connection; allowed with allowPrivate', async () => {
    seen.length = 0;
    await assert.rejects(safeFetch(`http://mirror.test:${port}/x`, opts([])), (e: Error) => e instanceof RefusedError && /loopback/.test(e.message));
    assert.equal(seen.length, 0);
    const r = await safeFetch(`http://mirror.test:${port}/x`, opts(['127.0.0.1/32']));
    assert.equal(await text(r), 'hello');
    // Connected to the checked address, with the name in Host; nothing secret sent.
    assert.equal(seen[0]!.headers.host, `mirror.test:${port}`);
    assert.equal(seen[0]!.headers.authorization, undefined);
    assert.equal(seen[0]!.headers.cookie, undefined);
  });

  test('every redirect hop is re-checked: a hop to a refused URL is never requested', async () => {
    seen.length = 0;
    const hop = encodeURIComponent(`http://127.0.0.1:${port}/denied/x`);
    await assert.rejects(
      safeFetch(`http://127.0.0.1:${port}/to/${hop}`, opts(['127.0.0.1/32'])),
      (e: Error) => e instanceof RefusedError && (e as RefusedError).url.endsWith('/denied/x'),
    );
    assert.deepEqual(
      seen.map((s) => s.url),
      [`/to/${hop}`],
    );
    const meta = encodeURIComponent('http://169.254.169.254/latest/meta-data/');
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/to/${meta}`, opts(['127.0.0.1/32'])), /169\.254\.169\.254/);
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/to/${encodeURIComponent('file:///etc/passwd')}`, opts(['127.0.0.1/32'])), RefusedError);
    await assert.rejects(
      safeFetch(`http://127.0.0.1:${port}/loop`, opts(['127.0.0.1/32'])),
      (e: Error) => e instanceof FetchError && /redirects/.test(e.message),
    );
  });

  test('a server that never sends headers ends in a FetchError (header timeout), not a hang', async () => {
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/hang`, opts(['127.0.0.1/32'])), FetchError);
  });
});
