// Unit tests for foreign layers: URL rules, the address guard, safe fetch (local server), store, verifier, admin API.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { buildApp } from '../../src/app.ts';
import { DigestMismatchError } from '../../src/oci/verify.ts';
import { ForeignLayers } from '../../src/foreign/layers.ts';
import { passThroughHandle, Verifier } from '../../src/foreign/fetch.ts';
import { checkUrlShape, expandMirror, ForeignPolicy, globToRegExp } from '../../src/foreign/policy.ts';
import { loadConfig } from '../../src/config/load.ts';
import { foreignSchema } from '../../src/config/foreign.ts';
import { cidrList } from '../../src/upstream/cidr.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { OciError } from '../../src/oci/errors.ts';
import { BlobStore } from '../../src/store/blob-store.ts';
import { ForeignStore } from '../../src/store/foreign.ts';
import { Metadata } from '../../src/store/metadata.ts';
import type { UpstreamResponse } from '../../src/upstream/client.ts';
import { addressRefusal, FetchError, RefusedError, safeFetch, type SafeFetchOptions, type SafeResponse } from '../../src/upstream/safe-fetch.ts';
import { makeTempDir } from '../helpers/tmp.ts';

const rules = (r: unknown[]) => foreignSchema.parse({ rules: r }).rules;

describe('URL rules', () => {
  test('globs: whole-URL globs keep * inside the authority; host-only globs; first match wins; default deny', () => {
    const re = globToRegExp('https://*.example.com/*');
    assert.ok(re.test('https://cdn.example.com/a/b/c'));
    for (const u of ['https://evil.test/.example.com/x', 'https://a.example.com.evil.test/x', 'https://a.example.com:8443/x', 'http://a.example.com/x']) {
      assert.equal(re.test(u), false, u);
    }
    const p = new ForeignPolicy(rules([
      { match: 'https://mirror.example/blocked/*', action: 'deny' },
      { match: 'https://mirror.example/*', action: 'fetch', cache: false },
      { match: '*.cdn.example', action: 'redirect' },
      { regex: '^http://10\\.1\\.2\\.3(:\\d+)?/', action: 'fetch', allowPrivate: ['10.1.2.3/32'] },
    ]));
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

describe('address guard', () => {
  const none = cidrList([]);
  test('loopback, private, link-local, multicast, unspecified (also inside IPv6) are refused; public is not', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '224.0.0.1', '0.0.0.0', '255.255.255.255',
      '::1', '::', 'fe80::1', 'fc00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:a9fe:a9fe', '64:ff9b::a9fe:a9fe', '2002:7f00:1::1']) {
      assert.ok(addressRefusal(a, none), a);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(addressRefusal(a, none), undefined, a);
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
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/to/${hop}`, opts(['127.0.0.1/32'])),
      (e: Error) => e instanceof RefusedError && (e as RefusedError).url.endsWith('/denied/x'));
    assert.deepEqual(seen.map((s) => s.url), [`/to/${hop}`]);
    const meta = encodeURIComponent('http://169.254.169.254/latest/meta-data/');
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/to/${meta}`, opts(['127.0.0.1/32'])), /169\.254\.169\.254/);
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/to/${encodeURIComponent('file:///etc/passwd')}`, opts(['127.0.0.1/32'])), RefusedError);
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/loop`, opts(['127.0.0.1/32'])), (e: Error) => e instanceof FetchError && /redirects/.test(e.message));
  });

  test('a server that never sends headers ends in a FetchError (header timeout), not a hang', async () => {
    await assert.rejects(safeFetch(`http://127.0.0.1:${port}/hang`, opts(['127.0.0.1/32'])), FetchError);
  });
});

describe('verification', () => {
  const bytes = Buffer.from('x'.repeat(100_000));
  const digest = digestOf(bytes);
  const body = (b: Buffer) => Readable.from([b.subarray(0, 60_000), b.subarray(60_000)]) as unknown as UpstreamResponse['body'];
  const drain = async (it: AsyncIterable<unknown>) => {
    for await (const _ of it) void _;
  };

  test('Verifier: right bytes pass; wrong bytes or too many throw DigestMismatchError and report the URL', async () => {
    const verdicts: unknown[] = [];
    await drain(new Verifier(digest, bytes.length, (v) => verdicts.push(v)).wrap(body(bytes)) as unknown as AsyncIterable<unknown>);
    const wrong = Buffer.from(bytes);
    wrong[5] = 0x41;
    await assert.rejects(drain(new Verifier(digest, bytes.length, (v) => verdicts.push(v)).wrap(body(wrong)) as unknown as AsyncIterable<unknown>), DigestMismatchError);
    await assert.rejects(drain(new Verifier(digest, bytes.length - 1, (v) => verdicts.push(v)).wrap(body(bytes)) as unknown as AsyncIterable<unknown>), DigestMismatchError);
    assert.deepEqual(verdicts.map((v) => (v as { ok: boolean; mismatch?: boolean }).mismatch ?? 'ok'), ['ok', true, true]);
  });

  test('pass-through (cache: false): a range is served once verified; wrong bytes never end cleanly', async () => {
    const res = (b: Buffer): SafeResponse => ({ status: 200, headers: {}, body: body(b), url: 'http://m.test/x' });
    const ok = passThroughHandle(bytes.length, res(bytes), () => new Verifier(digest, bytes.length, () => undefined), async () => res(bytes));
    const chunks: Buffer[] = [];
    for await (const c of ok.open(10, 59_999 + 10)) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(bytes.subarray(10, 60_010)));
    const wrong = Buffer.from(bytes);
    wrong[99_999] = 0x41;
    const bad = passThroughHandle(bytes.length, res(wrong), () => new Verifier(digest, bytes.length, () => undefined), async () => res(wrong));
    let got = 0;
    await assert.rejects((async () => {
      for await (const c of bad.open()) got += (c as Buffer).length;
    })(), DigestMismatchError);
    assert.ok(got < bytes.length);
  });
});

describe('store and admin API', () => {
  const tmp = makeTempDir('stevedore-foreign-unit-');
  after(() => tmp.cleanup());
  const d1 = digestOf(Buffer.from('one'));

  test('ForeignStore: urls merged in order, repos, mirrors in insertion order, health counts consecutive failures', () => {
    const meta = new Metadata(`${tmp.path}/store.db`);
    const s = new ForeignStore(meta.db);
    s.record('up', 'a/b', [{ digest: d1, size: 3, mediaType: 'm', urls: ['https://x/1', 'https://x/2'], foreign: true }], 1);
    s.record('up', 'c/d', [{ digest: d1, size: 3, mediaType: 'm', urls: ['https://x/2', 'https://x/3'], foreign: true }], 2);
    const row = s.get(d1)!;
    assert.deepEqual(row.urls, ['https://x/1', 'https://x/2', 'https://x/3']);
    assert.deepEqual([row.firstSeen, row.lastSeen, row.status], [1, 2, 'unresolved']);
    assert.equal(s.seenIn(d1, 'up', 'a/b'), true);
    assert.equal(s.seenIn(d1, 'up', 'e/f'), false);
    assert.equal(s.addMirror(d1, 'https://m/2', 1), true);
    assert.equal(s.addMirror(d1, 'https://m/1', 2), true);
    assert.equal(s.addMirror(d1, 'https://m/2', 3), false);
    assert.deepEqual(s.mirrors(d1), ['https://m/2', 'https://m/1']);
    s.markFailure('https://x/1', 'boom', 5);
    s.markFailure('https://x/1', 'boom again', 6);
    assert.deepEqual([s.health('https://x/1').failures, s.health('https://x/1').lastError], [2, 'boom again']);
    s.markSuccess('https://x/1', 7);
    assert.equal(s.health('https://x/1').failures, 0);
    meta.putBlob(d1, 3);
    assert.equal(s.get(d1)!.status, 'cached');
    meta.close();
  });

  test('admin API: absent without a token; Bearer auth; mirrors; clear errors', async () => {
    const off = buildApp(loadConfig({ data: `${tmp.path}/off` }, {}), pino({ level: 'silent' }));
    assert.equal((await off.app.request('/-/admin/foreign')).status, 404);
    await off.close();
    const token = 'unit-admin-token-123456';
    const config = loadConfig({ data: `${tmp.path}/on` }, { STEVEDORE_ADMIN_TOKEN: token });
    const s = buildApp(config, pino({ level: 'silent' }));
    try {
      assert.equal((await s.app.request('/-/admin/foreign')).status, 401);
      assert.equal((await s.app.request('/-/admin/foreign', { headers: { authorization: `Bearer ${token}x` } })).status, 401);
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      assert.deepEqual(await (await s.app.request('/-/admin/foreign', { headers: auth })).json(), { layers: [] });
      const target = { upstream: config.upstreams['docker.io']!, repo: 'library/x' };
      s.foreign.onManifest(target, d1, { mediaType: 'm', descriptors: [{ digest: d1, size: 3, mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', urls: ['https://f.example/1'], kind: 'blob', foreign: true }] });
      const add = await s.app.request(`/-/admin/foreign/${d1}/mirrors`, { method: 'POST', headers: auth, body: JSON.stringify({ urls: ['https://m.example/1'] }) });
      assert.deepEqual(await add.json(), { added: ['https://m.example/1'] });
      const bad = await s.app.request(`/-/admin/foreign/${d1}/mirrors`, { method: 'POST', headers: auth, body: JSON.stringify({ urls: ['https://u:p@m.example/1'] }) });
      assert.equal(bad.status, 400);
      const shown = (await (await s.app.request(`/-/admin/foreign/${d1}`, { headers: auth })).json()) as { candidates: { url: string; action: string }[]; repos: unknown[] };
      assert.deepEqual(shown.candidates.map((c) => [c.url, c.action]), [['https://m.example/1', 'deny'], ['https://f.example/1', 'deny']]);
      assert.deepEqual(shown.repos, [{ upstream: 'docker.io', repo: 'library/x' }]);
      assert.equal((await s.app.request(`/-/admin/foreign/${digestOf(Buffer.from('nope'))}`, { headers: auth })).status, 404);
      // Default rules deny everything: the GET answers the clear error without any outbound request.
      const fd = s.foreign.lookup(target, d1)!;
      await assert.rejects(s.foreign.resolve(target, d1, fd, async () => assert.fail('no fill under deny')), (e: OciError) => {
        const detail = e.detail as { policy: string; tried: { url: string }[]; reason: string };
        return e.code === 'BLOB_UNKNOWN' && detail.policy === 'deny' && detail.reason === 'foreign layer' && detail.tried.length === 2;
      });
      assert.equal(s.foreign.lookup({ ...target, repo: 'library/other' }, d1), undefined);
      assert.equal(s.foreign.stats().denied, 1);
    } finally {
      await s.close();
    }
  });
});

describe('resolution order', () => {
  const tmp = makeTempDir('stevedore-foreign-order-');
  after(() => tmp.cleanup());

  test('redirect: operator mirrors first, unhealthy URLs last, denied ones skipped; the Location is the parsed URL', async () => {
    const log = pino({ level: 'silent' });
    const store = new BlobStore(tmp.path);
    const meta = new Metadata(store.paths.db);
    const fs = new ForeignStore(meta.db);
    const foreign = new ForeignLayers({
      store: fs, log, now: () => 1, fill: { store, meta, log, maxResumes: 0 },
      policy: new ForeignPolicy(rules([{ match: 'https://*.example/*', action: 'redirect' }])),
      config: { timeouts: { connect: 1_000, headers: 1_000, bodyIdle: 1_000 }, maxRedirects: 0 },
    });
    const target = { upstream: { name: 'up', url: 'https://up.example', libraryPrefix: false }, repo: 'a/b' };
    const d = digestOf(Buffer.from('layer'));
    const urls = ['https://denied.test/x', 'https://one.example/x\n', 'https://two.example/x'];
    foreign.onManifest(target, d, { mediaType: 'm', descriptors: [{ digest: d, size: 5, mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls, kind: 'blob', foreign: true }] });
    const fd = foreign.lookup(target, d)!;
    const noFill = async () => assert.fail('redirect never fills');
    assert.equal((await foreign.resolve(target, d, fd, noFill)).redirect, 'https://one.example/x');
    fs.markFailure('https://one.example/x\n', 'down', 1);
    assert.equal((await foreign.resolve(target, d, fd, noFill)).redirect, 'https://two.example/x');
    fs.addMirror(d, 'https://mirror.example/m', 1);
    const h = await foreign.resolve(target, d, fd, noFill);
    assert.deepEqual([h.redirect, h.outcome, h.size], ['https://mirror.example/m', 'redirect', 5]);
    assert.deepEqual(await foreign.stat(target, d, fd), { size: 5, outcome: 'redirect' });
    assert.equal(fs.get(d)!.status, 'redirectable');
    meta.close();
  });
});
