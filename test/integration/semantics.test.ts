// Behaviour against the fake upstream: byte-exact manifests, tag TTL/revalidation/stale, repo isolation, errors, tags/list.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { freePort, waitFor } from '../helpers/tmp.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function get(url: string, method = 'GET', headers: Record<string, string> = {}): Promise<Got> {
  const res = await request(url, { method: method as 'GET', headers, signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** A request with the path sent exactly as given (fetch and undici would normalise "..", node:http does not). */
function raw(base: string, method: string, path: string): Promise<Got> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, method, path, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Asserts the OCI error envelope {"errors":[{code,message,detail}]} with one error, and returns it. */
function ociError(r: Got, status: number, code: string): { detail: unknown } {
  assert.equal(r.status, status, r.body.toString());
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const j = JSON.parse(r.body.toString()) as { errors: { code: string; message: string; detail: unknown }[] };
  assert.equal(j.errors.length, 1);
  assert.deepEqual(Object.keys(j.errors[0]!).sort(), ['code', 'detail', 'message']);
  assert.equal(j.errors[0]!.code, code);
  assert.equal(typeof j.errors[0]!.message, 'string');
  return j.errors[0]!;
}

function manifest(): Buffer {
  const desc = (mt: string): object => ({ mediaType: mt, digest: sha256(randomBytes(16)), size: 100 });
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: desc('application/vnd.oci.image.config.v1+json'),
      layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip')],
    }),
  );
}

describe('manifests, tags and errors', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  let now = 1_700_000_000_000;
  const m = (repo: string, ref: string): string => `${sd.url}/v2/${repo}/manifests/${ref}`;

  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url], tagTtl: '30', configObject: { retries: 0 } }, () => now);
  });
  after(async () => {
    await fake?.stop();
    await sd?.stop();
  });

  test('manifests are byte-identical with upstream Content-Type and digest; unknown media types pass through', async () => {
    const docker = Buffer.from(
      `{\n   "schemaVersion": 2,\n "mediaType": "${DOCKER_MANIFEST}",\n"config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": "${sha256(randomBytes(8))}"},\n "layers": [ ]\n}\n\n`,
    );
    const layer = randomBytes(5000);
    const artifact = Buffer.from(
      JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType: 'application/vnd.example.sbom.v1',
          config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256(Buffer.from('{}')), size: 2, data: 'e30=' },
          layers: [{ mediaType: 'application/vnd.example+zstd', digest: sha256(layer), size: layer.length }],
          annotations: { 'org.example.z': 'ü', 'org.example.a': '1' },
        },
        null,
        3,
      ),
    );
    fake.addBlob('p/art', layer);
    const custom = Buffer.from('{"schemaVersion":2,"whatever":[1,2,3]}');
    for (const [repo, bytes, type] of [
      ['p/docker', docker, DOCKER_MANIFEST],
      ['p/art', artifact, OCI_MANIFEST],
      ['p/custom', custom, 'application/vnd.example.custom.v1+json'],
    ] as const) {
      const d = fake.addManifest(repo, 'v1', bytes, type);
      for (const ref of ['v1', d, 'v1']) {
        const r = await get(m(repo, ref));
        assert.equal(r.status, 200, `${repo}:${ref} ${r.body.toString()}`);
        assert.ok(r.body.equals(bytes), `${repo}:${ref} bytes`);
        assert.equal(r.headers['content-type'], type);
        assert.equal(r.headers['docker-content-digest'], d);
        const h = await get(m(repo, ref), 'HEAD');
        assert.equal(h.status, 200);
        assert.equal(h.headers['content-length'], String(bytes.length));
        assert.equal(h.headers['docker-content-digest'], d);
      }
    }
    const l = await get(`${sd.url}/v2/p/art/blobs/${sha256(layer)}`);
    assert.equal(l.status, 200);
    assert.equal(sha256(l.body), sha256(layer));
  });

  test('a manifest the upstream labels text/html is served as stored, but no browser renders it on this origin', async () => {
    const page = Buffer.from('{"schemaVersion":2,"x":"<script>alert(1)</script>"}');
    const d = fake.addManifest('p/html', 'v1', page, 'text/html');
    for (const ref of ['v1', d]) {
      const r = await get(m('p/html', ref));
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(page), 'bytes as upstream sent them');
      assert.equal(r.headers['content-type'], 'text/html', 'the upstream Content-Type, not rewritten');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.match(String(r.headers['content-security-policy']), /default-src 'none'.*sandbox/);
    }
    // Error answers under /v2/ carry the same headers.
    const e = await get(m('p/html', 'nope'));
    assert.equal(e.headers['x-content-type-options'], 'nosniff');
    assert.match(String(e.headers['content-security-policy']), /sandbox/);
  });

  test('tag TTL: fresh -> no request; stale -> one HEAD; re-pointed -> new digest; 503 -> stale; 404 -> MANIFEST_UNKNOWN', async () => {
    const path = '/v2/ttl/a/manifests/v1';
    const ups = (): number => fake.count('*', path);
    const one = manifest();
    const d1 = fake.addManifest('ttl/a', 'v1', one, OCI_MANIFEST);
    const r1 = await get(m('ttl/a', 'v1'));
    assert.equal(r1.headers['docker-content-digest'], d1);
    assert.equal(fake.count('GET', path), 1);

    now += 10_000;
    let n = ups();
    const r2 = await get(m('ttl/a', 'v1'));
    assert.ok(r2.body.equals(one));
    assert.equal(ups(), n, 'inside the TTL: no upstream request');

    now += 25_000;
    n = ups();
    const r3 = await get(m('ttl/a', 'v1'));
    assert.ok(r3.body.equals(one));
    assert.equal(fake.count('HEAD', path), 1);
    assert.equal(ups(), n + 1, 'past the TTL, unchanged: exactly one HEAD, no GET');

    const two = manifest();
    const d2 = fake.addManifest('ttl/a', 'v1', two, OCI_MANIFEST);
    now += 31_000;
    const r4 = await get(m('ttl/a', 'v1'));
    assert.equal(r4.headers['docker-content-digest'], d2);
    assert.ok(r4.body.equals(two));

    fake.setFault(path, { kind: 'status', status: 503 });
    now += 31_000;
    const r5 = await get(m('ttl/a', 'v1'));
    assert.equal(r5.status, 200);
    assert.ok(r5.body.equals(two));
    assert.equal(r5.headers['x-stevedore-cache'], 'stale');
    assert.ok(r5.headers.warning, 'a warning header says it is stale');

    fake.setFault(path, { kind: 'status', status: 404, body: JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'gone' }] }) });
    now += 31_000;
    ociError(await get(m('ttl/a', 'v1')), 404, 'MANIFEST_UNKNOWN');
    fake.clearFault(path);
  });

  test('upstream stopped: a tag past its TTL is served stale, a cached digest is served', async () => {
    const gone = await startFakeUpstream();
    const s = await startInProcess({ upstream: [gone.url], tagTtl: '30', configObject: { retries: 0 } }, () => now);
    try {
      const bytes = manifest();
      const d = gone.addManifest('st/a', 'v1', bytes, OCI_MANIFEST);
      assert.equal((await get(`${s.url}/v2/st/a/manifests/v1`)).status, 200);
      await gone.stop();
      now += 60_000;
      const t = await get(`${s.url}/v2/st/a/manifests/v1`);
      assert.equal(t.status, 200);
      assert.ok(t.body.equals(bytes));
      assert.equal(t.headers['x-stevedore-cache'], 'stale');
      assert.ok(t.headers.warning);
      const byDigest = await get(`${s.url}/v2/st/a/manifests/${d}`);
      assert.equal(byDigest.status, 200);
      assert.ok(byDigest.body.equals(bytes));
    } finally {
      await gone.stop();
      await s.stop();
    }
  });

  test('repo isolation: content cached for one repo is served for another only if upstream has it there', async () => {
    const bytes = randomBytes(20_000);
    const d = fake.addBlob('iso/a', bytes);
    assert.equal(sha256((await get(`${sd.url}/v2/iso/a/blobs/${d}`)).body), d);
    ociError(await get(`${sd.url}/v2/iso/b/blobs/${d}`), 404, 'BLOB_UNKNOWN');
    assert.equal((await get(`${sd.url}/v2/iso/b/blobs/${d}`, 'HEAD')).status, 404);
    assert.equal(fake.count('GET', `/v2/iso/b/blobs/${d}`), 0, 'the body is never fetched for b');

    fake.addBlob('iso/c', bytes);
    const c = await get(`${sd.url}/v2/iso/c/blobs/${d}`);
    assert.equal(c.status, 200);
    assert.equal(sha256(c.body), d);
    assert.equal(fake.count('HEAD', `/v2/iso/c/blobs/${d}`), 1);
    assert.equal(fake.count('GET', `/v2/iso/c/blobs/${d}`), 0);

    const md = fake.addManifest('iso/a', 'v1', manifest(), OCI_MANIFEST);
    assert.equal((await get(m('iso/a', md))).status, 200);
    ociError(await get(m('iso/b', md)), 404, 'MANIFEST_UNKNOWN');
    assert.equal(fake.count('GET', `/v2/iso/b/manifests/${md}`), 1);
  });

  test('errors: unconfigured ns, traversal, bad digests; each as an OCI error envelope', async () => {
    const d = sha256(Buffer.from('x'));
    ociError(await get(`${sd.url}/v2/x/y/manifests/v1?ns=evil.example`), 403, 'DENIED');
    ociError(await get(`${sd.url}/v2/evil.example/y/manifests/v1`), 403, 'DENIED');
    for (const p of [
      '/v2/a/../b/manifests/x',
      '/v2/a/./b/manifests/x',
      '/v2/a/%2e%2e/b/manifests/x',
      `/v2/a/%2E%2E/b/blobs/${d}`,
      '/v2/a%2Fb/manifests/x',
      '/v2/a/%2fb/tags/list',
      '/v2/a//b/manifests/x',
      // A dot segment anywhere, even one that would lead out of /v2/ to another endpoint.
      '/v2/../-/ui/data',
      '/v2/%2e%2e/healthz',
      '/-/ui/../healthz',
      '/v2/./',
    ]) {
      ociError(await raw(sd.url, 'GET', p), 400, 'NAME_INVALID');
    }
    // The absolute form of a request target (RFC 9112 §3.2.2) names the same resource as its path.
    const abs = await raw(sd.url, 'GET', `http://${new URL(sd.url).host}/v2/`);
    assert.equal(abs.status, 200, abs.body.toString());
    assert.equal(abs.body.toString(), '{}');
    ociError(await get(`${sd.url}/v2/a/b/blobs/sha256:xyz`), 400, 'DIGEST_INVALID');
    ociError(await get(`${sd.url}/v2/a/b/blobs/${d.slice(0, -1)}`), 400, 'DIGEST_INVALID');
    ociError(await get(`${sd.url}/v2/a/b/manifests/sha256:zz`), 400, 'DIGEST_INVALID');
    assert.equal(fake.requests().filter((q) => q.path.startsWith('/v2/a/')).length, 0, 'refused requests never reach upstream');
  });

  test('writes (push, delete, uploads) answer 405 UNSUPPORTED', async () => {
    const d = sha256(Buffer.from('x'));
    const wrong: string[] = [];
    for (const [method, p] of [
      ['PUT', '/v2/a/b/manifests/v1'],
      ['DELETE', `/v2/a/b/manifests/${d}`],
      ['DELETE', `/v2/a/b/blobs/${d}`],
      ['POST', '/v2/a/b/blobs/uploads/'],
      ['POST', '/v2/a/b/blobs/uploads'],
      ['PATCH', '/v2/a/b/blobs/uploads/0e4c'],
      ['PUT', `/v2/a/b/blobs/uploads/0e4c?digest=${d}`],
    ] as const) {
      const r = await raw(sd.url, method, p);
      const code = (JSON.parse(r.body.toString()) as { errors: { code: string }[] }).errors[0]?.code;
      if (r.status !== 405 || code !== 'UNSUPPORTED') wrong.push(`${method} ${p} -> ${r.status} ${code}`);
      else ociError(r, 405, 'UNSUPPORTED');
    }
    assert.deepEqual(wrong, []);
    assert.equal(fake.requests().filter((q) => q.path.startsWith('/v2/a/')).length, 0, 'refused requests never reach upstream');
  });

  test('nothing cached and upstream down: 404 MANIFEST_UNKNOWN / BLOB_UNKNOWN with a detail', async () => {
    const s = await startInProcess({ upstream: [`http://127.0.0.1:${await freePort()}`], configObject: { retries: 0 } });
    try {
      const md = ociError(await get(`${s.url}/v2/down/x/manifests/v1`), 404, 'MANIFEST_UNKNOWN');
      assert.ok(md.detail && JSON.stringify(md.detail).length > 2, JSON.stringify(md.detail));
      const bd = ociError(await get(`${s.url}/v2/down/x/blobs/${sha256(Buffer.from('y'))}`), 404, 'BLOB_UNKNOWN');
      assert.ok(bd.detail && JSON.stringify(bd.detail).length > 2, JSON.stringify(bd.detail));
    } finally {
      await s.stop();
    }
  });

  test('tags/list: sorted, paginated with n and a Link header, n=abc refused, upstream pages merged', async () => {
    fake.setTagListing({ order: 'insertion' });
    for (const t of ['v10', 'alpha', 'v2', 'beta', '1.0']) fake.addManifest('tg/x', t, manifest(), OCI_MANIFEST);
    const all = await get(`${sd.url}/v2/tg/x/tags/list`);
    assert.equal(all.status, 200);
    assert.deepEqual(JSON.parse(all.body.toString()), { name: 'tg/x', tags: ['1.0', 'alpha', 'beta', 'v10', 'v2'] });

    const pages: string[][] = [];
    let next: string | undefined = '/v2/tg/x/tags/list?n=2';
    while (next && pages.length < 10) {
      const r = await get(`${sd.url}${next}`);
      assert.equal(r.status, 200);
      pages.push((JSON.parse(r.body.toString()) as { tags: string[] }).tags);
      const link = r.headers.link as string | undefined;
      if (pages.length === 1) assert.equal(link, '</v2/tg/x/tags/list?n=2&last=alpha>; rel="next"');
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)?.[1] : undefined;
    }
    assert.deepEqual(pages, [['1.0', 'alpha'], ['beta', 'v10'], ['v2']]);
    ociError(await get(`${sd.url}/v2/tg/x/tags/list?n=abc`), 400, 'PAGINATION_NUMBER_INVALID');

    fake.setTagListing({ pageSize: 2 });
    for (const t of ['e', 'd', 'c', 'b', 'a']) fake.addManifest('tg/paged', t, manifest(), OCI_MANIFEST);
    const merged = await get(`${sd.url}/v2/tg/paged/tags/list`);
    fake.setTagListing({});
    assert.deepEqual((JSON.parse(merged.body.toString()) as { tags: string[] }).tags, ['a', 'b', 'c', 'd', 'e']);
    assert.equal(fake.count('GET', '/v2/tg/paged/tags/list'), 3);
  });

  test('tags/list: an upstream list that is not JSON, or larger than the cap, is 502 UNAVAILABLE (not 404, not held whole)', async () => {
    const path = '/v2/tg/hostile/tags/list';
    fake.setFault(path, { kind: 'status', status: 200, body: '{"tags": [1,2,{"a":1}, "ok"' });
    const bad = ociError(await get(`${sd.url}${path}`), 502, 'UNAVAILABLE');
    assert.match(JSON.stringify(bad.detail), /not valid JSON/);
    // One page of 9 MiB of distinct tags (the audit's upstream sent 100 of 8 MiB, and the process ran out of memory).
    const tags = Array.from({ length: 90_000 }, (_, i) => `t${i}-${'x'.repeat(96)}`);
    fake.setFault(path, { kind: 'status', status: 200, body: JSON.stringify({ name: 'tg/hostile', tags }) });
    const big = ociError(await get(`${sd.url}${path}`), 502, 'UNAVAILABLE');
    fake.clearFault(path);
    assert.match(JSON.stringify(big.detail), /upstream tag list larger than \d+ bytes/);
  });

  test('tags/list: a client that leaves stops the fetch of a long list (no page is asked for after it)', async () => {
    fake.setTagListing({ pageSize: 1 });
    for (let i = 0; i < 20; i++) fake.addManifest('tg/long', `t${i}`, manifest(), OCI_MANIFEST);
    const path = '/v2/tg/long/tags/list';
    // Every page trickles (~40 bytes, 50 ms a byte): the whole list would take ~40 s.
    fake.setFault(path, { kind: 'slow-body', bytesPerTick: 1, tickMs: 50 });
    const client = new AbortController();
    const gone = request(`${sd.url}${path}`, { signal: client.signal }).catch(() => undefined);
    await waitFor('the first page asked for', () => fake.count('GET', path) >= 1, 10_000, 10);
    client.abort();
    await gone;
    await waitFor('the fetch to stop', () => sd.proxy.tags.running === 0, 10_000, 10);
    fake.clearFault(path);
    fake.setTagListing({});
    assert.ok(fake.count('GET', path) <= 2, `${fake.count('GET', path)} of 20 pages asked for`);
  });
});
