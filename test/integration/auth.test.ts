// Upstream bearer-token auth against the fake upstream: anonymous tokens, configured credentials, hostile realms, redirects.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../helpers/fake-upstream.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function get(url: string): Promise<{ status: number; body: Buffer }> {
  const res = await request(url, { signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

function manifest(): Buffer {
  const desc = (mt: string): object => ({ mediaType: mt, digest: sha256(randomBytes(16)), size: 100 });
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: desc('application/vnd.oci.image.config.v1+json'), layers: [] }));
}

const tokenRequests = (fake: FakeUpstream): RecordedRequest[] => fake.requests().filter((q) => q.path.startsWith('/token'));
const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('upstream token auth', () => {
  let fake: FakeUpstream;
  let cdn: FakeUpstream;
  const started: InProcess[] = [];
  const stevedore = async (opts: Parameters<typeof startInProcess>[0] = {}): Promise<InProcess> => {
    const s = await startInProcess({ upstream: [fake.url], ...opts, configObject: { retries: 1, ...opts.configObject } });
    started.push(s);
    return s;
  };
  const envName = (): string => `STEVEDORE_UPSTREAM_${fake.host.replace(/[^0-9A-Za-z]/g, '_').toUpperCase()}`;

  before(async () => {
    [fake, cdn] = await Promise.all([startFakeUpstream(), startFakeUpstream()]);
  });
  after(async () => {
    await Promise.allSettled([fake?.stop(), cdn?.stop()]);
    for (const s of started) await s.stop();
  });

  test('anonymous: 401 -> token -> success; the token is reused within its lifetime', async () => {
    fake.requireAuth({ service: 'fake-registry' });
    fake.reset();
    const sd = await stevedore();
    const one = manifest();
    const two = manifest();
    fake.addManifest('an/x', 'v1', one, OCI_MANIFEST);
    fake.addManifest('an/x', 'v2', two, OCI_MANIFEST);
    const r1 = await get(`${sd.url}/v2/an/x/manifests/v1`);
    assert.equal(r1.status, 200);
    assert.ok(r1.body.equals(one));
    const tokens = tokenRequests(fake);
    assert.equal(tokens.length, 1);
    const q = new URL(tokens[0]!.path, fake.url).searchParams;
    assert.equal(q.get('service'), 'fake-registry');
    assert.equal(q.get('scope'), 'repository:an/x:pull');
    assert.equal(tokens[0]!.headers.authorization, undefined, 'anonymous: no credentials sent');

    const r2 = await get(`${sd.url}/v2/an/x/manifests/v2`);
    assert.equal(r2.status, 200);
    assert.ok(r2.body.equals(two));
    assert.equal(tokenRequests(fake).length, 1, 'one token request in total');
    const v2 = fake.requests().filter((x) => x.path.startsWith('/v2/an/x/manifests/v2'));
    assert.equal(v2.length, 1, 'the cached token is sent up front: no second 401');
    assert.match(String(v2[0]!.headers.authorization), /^Bearer /);
  });

  test('configured credentials (env or config file) are sent to the token endpoint as Basic auth', async () => {
    fake.requireAuth({ service: 'fake-registry', username: 'alice', password: 's3cr=t:x' });
    const bytes = manifest();
    fake.addManifest('cr/x', 'v1', bytes, OCI_MANIFEST);
    const viaEnv = await stevedore({ env: { [`${envName()}_USERNAME`]: 'alice', [`${envName()}_PASSWORD`]: 's3cr=t:x' } });
    const viaFile = await stevedore({ configObject: { upstreams: { [fake.host]: { url: fake.url, username: 'alice', password: 's3cr=t:x' } } } });
    for (const sd of [viaEnv, viaFile]) {
      fake.reset();
      const r = await get(`${sd.url}/v2/cr/x/manifests/v1`);
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(bytes));
      const tokens = tokenRequests(fake);
      assert.equal(tokens.length, 1);
      assert.equal(tokens[0]!.headers.authorization, basic('alice', 's3cr=t:x'));
      for (const q of fake.requests().filter((x) => x.path.startsWith('/v2/'))) {
        assert.ok(!String(q.headers.authorization ?? '').startsWith('Basic'), 'the registry itself only ever sees the bearer token');
      }
    }
  });

  test('wrong credentials: 403 DENIED, and the refused credentials are not retried', async () => {
    fake.requireAuth({ service: 'fake-registry', username: 'alice', password: 'right' });
    fake.addManifest('wc/x', 'v1', manifest(), OCI_MANIFEST);
    const sd = await stevedore({ env: { [`${envName()}_USERNAME`]: 'alice', [`${envName()}_PASSWORD`]: 'wrong' } });
    fake.reset();
    const r = await get(`${sd.url}/v2/wc/x/manifests/v1`);
    const code = (JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]?.code;
    assert.deepEqual(
      { status: r.status, code, tokenRequests: tokenRequests(fake).length },
      { status: 403, code: 'DENIED', tokenRequests: 1 },
      r.body.toString(),
    );
  });

  test('a realm that is neither the upstream itself nor listed in its realms is never contacted; the client gets an error, not 500', async () => {
    const sd = await stevedore({ env: { [`${envName()}_USERNAME`]: 'alice', [`${envName()}_PASSWORD`]: 'secret' } });
    const d = fake.addBlob('ev/x', randomBytes(100));
    fake.addManifest('ev/x', 'v1', manifest(), OCI_MANIFEST);
    // localhost is another host than 127.0.0.1 but reaches this fake: a request to it would be recorded.
    for (const realm of ['http://evil.example/token', `http://localhost:${new URL(fake.url).port}/token`]) {
      fake.requireAuth({ service: 'fake-registry', realm });
      fake.reset();
      for (const p of ['/v2/ev/x/manifests/v1', `/v2/ev/x/blobs/${d}`]) {
        const r = await get(`${sd.url}${p}`);
        assert.ok(r.status >= 400 && r.status !== 500, `${realm} ${p}: ${r.status}`);
        assert.equal((JSON.parse(r.body.toString()) as { errors: unknown[] }).errors.length, 1);
        assert.ok(!r.body.toString().includes('secret'));
      }
      assert.equal(tokenRequests(fake).length, 0, realm);
      assert.equal(fake.count('GET', '/v2/ev/x/manifests/v1'), 1, 'a refused realm is not retried');
    }
  });

  test('a hostile token answer (1 MiB token, endless body, trickled body) is a clean OCI error; the server goes on', async () => {
    // connect + headers timeouts (1.5 s) are the token request's whole deadline; bodyIdle (30 s) would never fire.
    const sd = await stevedore({ configObject: { retries: 0, timeouts: { connect: 500, headers: 1_000 } } });
    const bodies = [
      { kind: 'size', bytes: 1 << 20 },
      { kind: 'endless', maxBytes: 64 << 20 },
      { kind: 'trickle', tickMs: 50 },
    ] as const;
    for (const [i, tokenBody] of bodies.entries()) {
      fake.requireAuth({ service: 'fake-registry', tokenBody });
      fake.addManifest(`ht/x${i}`, 'v1', manifest(), OCI_MANIFEST);
      fake.reset();
      const r = await get(`${sd.url}/v2/ht/x${i}/manifests/v1`);
      const errors = (JSON.parse(r.body.toString()) as { errors: { code: string; detail?: { reason?: string } }[] }).errors;
      assert.ok(r.status >= 400 && r.status !== 500, `${tokenBody.kind}: ${r.status}`);
      assert.equal(errors.length, 1, r.body.toString());
      assert.match(String(errors[0]?.detail?.reason), /token endpoint/, r.body.toString());
      assert.equal(fake.count('GET', `/v2/ht/x${i}/manifests/v1`), 1, `${tokenBody.kind}: no token was sent upstream`);
      assert.ok(fake.bytesSent('/token') < 16 << 20, `${tokenBody.kind}: ${fake.bytesSent('/token')} token bytes sent`);
    }
    fake.requireAuth({ service: 'fake-registry' });
    const bytes = manifest();
    fake.addManifest('ht/ok', 'v1', bytes, OCI_MANIFEST);
    const ok = await get(`${sd.url}/v2/ht/ok/manifests/v1`);
    assert.equal(ok.status, 200);
    assert.ok(ok.body.equals(bytes));
  });

  test('Authorization is not forwarded on a cross-origin redirect; the client gets the bytes', async () => {
    fake.requireAuth({ service: 'fake-registry' });
    fake.reset();
    // The CDN is on loopback: the upstream's allowPrivate must open it (the redirect guard refuses it otherwise).
    const sd = await stevedore({ configObject: { upstreams: { [fake.host]: { url: fake.url, allowPrivate: ['127.0.0.1/32'] } } } });
    const bytes = randomBytes(50_000);
    const d = fake.addBlob('rd/x', bytes);
    cdn.addBlob('rd/x', bytes);
    fake.setFault(d, { kind: 'redirect', location: `${cdn.url}/v2/rd/x/blobs/${d}?sig=abc` });
    const r = await get(`${sd.url}/v2/rd/x/blobs/${d}`);
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), d);
    const atOrigin = fake.requests().filter((q) => q.method === 'GET' && q.path.startsWith(`/v2/rd/x/blobs/${d}`));
    assert.ok(
      atOrigin.some((q) => String(q.headers.authorization).startsWith('Bearer ')),
      'the origin got the token',
    );
    const atCdn = cdn.requests().filter((q) => q.path.includes(d));
    assert.ok(atCdn.length >= 1);
    for (const q of atCdn) assert.equal(q.headers.authorization, undefined);
    fake.clearFault(d);
  });
});
