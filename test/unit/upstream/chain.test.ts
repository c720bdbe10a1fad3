// Unit tests of src/upstream/chain.ts: endpoints tried in order, ?ns= for mirrors, credentials per endpoint, breaker per endpoint.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { CircuitBreaker } from '../../../src/upstream/breaker.ts';
import { MirrorChain, mirrorPath } from '../../../src/upstream/chain.ts';
import { UpstreamClient } from '../../../src/upstream/client.ts';
import type { Upstream } from '../../../src/upstream/types.ts';
import { freePort } from '../../helpers/tmp.ts';

interface Seen {
  url: string;
  authorization?: string;
}

/** A recording endpoint on 127.0.0.1: answers with `answer(req)` (status, body) and records path + Authorization. */
async function endpoint(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

const ok = (body: string) => (_req: IncomingMessage, res: ServerResponse) => res.writeHead(200, { 'content-length': String(body.length) }).end(body);
const status = (code: number) => (_req: IncomingMessage, res: ServerResponse) => res.writeHead(code, { 'content-length': '0' }).end();
/** Basic auth as a private registry does it: 401 + challenge until the right credentials come. */
const basic = (user: string, pw: string, body: string) => (req: IncomingMessage, res: ServerResponse) => {
  if (req.headers.authorization === `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`) return ok(body)(req, res);
  res.writeHead(401, { 'www-authenticate': 'Basic realm="r"', 'content-length': '0' }).end();
};

function config(yaml: string, env: NodeJS.ProcessEnv = {}): Record<string, Upstream> {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'stevedore-unit-')), 'config.yaml');
  writeFileSync(file, yaml);
  return loadConfig({ config: file }, env).upstreams as Record<string, Upstream>;
}

const servers: Server[] = [];
const clients: UpstreamClient[] = [];
after(async () => {
  for (const s of servers) s.close();
  for (const c of clients) await c.close();
});

function chain(breaker?: CircuitBreaker): MirrorChain {
  const client = new UpstreamClient({
    timeouts: { connect: 2000, headers: 2000, bodyIdle: 2000 },
    retries: 1,
    baseBackoffMs: 1,
    ...(breaker ? { breaker } : {}),
  });
  clients.push(client);
  return new MirrorChain(client);
}

async function text(res: { status: number; body: { text(): Promise<string> } }): Promise<[number, string]> {
  return [res.status, await res.body.text()];
}

describe('MirrorChain', () => {
  test('mirrorPath appends ns as a query parameter', () => {
    assert.equal(mirrorPath('/blobs/sha256:ab', 'docker.io'), '/blobs/sha256:ab?ns=docker.io');
    assert.equal(mirrorPath('/tags/list?n=10&last=a', 'ghcr.io'), '/tags/list?n=10&last=a&ns=ghcr.io');
  });

  test('a mirror endpoint is asked with ?ns=<upstream>; its answer wins and the origin is not contacted', async () => {
    const mirror = await endpoint(ok('from-mirror'));
    const origin = await endpoint(ok('from-origin'));
    servers.push(mirror.server, origin.server);
    const ups = config(`upstreams:\n  docker.io:\n    endpoints:\n      - url: ${mirror.url}\n        mirror: true\n      - url: ${origin.url}\n`);
    const up = ups['docker.io']!;
    assert.deepEqual(
      up.endpoints?.map((e) => [e.mirror, e.url]),
      [
        [true, mirror.url],
        [false, origin.url],
      ],
    );
    assert.deepEqual(await text(await chain().send(up, 'library/alpine', '/manifests/3.20', 'GET')), [200, 'from-mirror']);
    assert.deepEqual(
      mirror.seen.map((s) => s.url),
      ['/v2/library/alpine/manifests/3.20?ns=docker.io'],
    );
    assert.equal(origin.seen.length, 0);
  });

  test('a mirror that is down, fails or lacks the content hands over to the next endpoint; the last answer decides', async () => {
    const failing = await endpoint(status(503));
    const missing = await endpoint(status(404));
    const origin = await endpoint(ok('from-origin'));
    const origin404 = await endpoint(status(404));
    servers.push(failing.server, missing.server, origin.server, origin404.server);
    // Taken once the servers listen: a port freed earlier may be handed to one of them (seen in CI: "listed twice").
    const closed = `http://127.0.0.1:${await freePort()}`;
    const yaml = `upstreams:\n  ghcr.io:\n    endpoints:\n${[closed, failing.url, missing.url].map((u) => `      - url: ${u}\n        mirror: true\n`).join('')}      - url: ${origin.url}\n`;
    const up = config(yaml)['ghcr.io']!;
    assert.deepEqual(await text(await chain().send(up, 'o/img', '/blobs/sha256:aa', 'GET')), [200, 'from-origin']);
    assert.equal(failing.seen.length, 2, '503 is retried once (retries: 1), then the next endpoint');
    assert.deepEqual(
      missing.seen.map((s) => s.url),
      ['/v2/o/img/blobs/sha256:aa?ns=ghcr.io'],
    );
    assert.deepEqual(
      origin.seen.map((s) => s.url),
      ['/v2/o/img/blobs/sha256:aa'],
      'the origin is asked as the registry itself, no ns',
    );
    // The origin's own 404 is the answer (not a mirror's).
    const up2 = config(`upstreams:\n  ghcr.io:\n    endpoints:\n      - url: ${closed}\n        mirror: true\n      - url: ${origin404.url}\n`)['ghcr.io']!;
    assert.equal((await chain().send(up2, 'o/img', '/blobs/sha256:aa', 'GET')).status, 404);
    // Every endpoint unreachable: the last failure is thrown (an upstream failure, so stale content may cover it).
    let closed2 = closed;
    while (closed2 === closed) closed2 = `http://127.0.0.1:${await freePort()}`;
    const up3 = config(`upstreams:\n  ghcr.io:\n    endpoints:\n      - url: ${closed}\n        mirror: true\n      - url: ${closed2}\n`)['ghcr.io']!;
    await assert.rejects(chain().send(up3, 'o/img', '/blobs/sha256:aa', 'GET'), { name: 'UpstreamError' });
  });

  test('credentials go only to the endpoint they are configured for', async () => {
    // The mirror answers 401 to everyone (so the client would send it anything it had), then the origin is asked.
    const mirror = await endpoint((_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="m"', 'content-length': '0' }).end());
    const origin = await endpoint(basic('alice', 'origin-pw', 'private'));
    servers.push(mirror.server, origin.server);
    const yaml = `upstreams:\n  reg.example:\n    endpoints:\n      - url: ${mirror.url}\n        mirror: true\n      - url: ${origin.url}\n        username: alice\n        password: origin-pw\n`;
    const up = config(yaml)['reg.example']!;
    const c = chain();
    for (let i = 0; i < 2; i++) assert.deepEqual(await text(await c.send(up, 'team/app', '/manifests/v1', 'GET')), [200, 'private']);
    assert.ok(mirror.seen.length >= 2);
    assert.deepEqual(
      mirror.seen.filter((s) => s.authorization),
      [],
      'the mirror never sees the origin credentials',
    );
    assert.ok(origin.seen.some((s) => s.authorization?.startsWith('Basic ')));
    // Environment credentials go to origin endpoints only; a mirror's own token goes to the mirror only.
    const tokenMirror = await endpoint(ok('m'));
    servers.push(tokenMirror.server);
    const yaml2 = `upstreams:\n  reg.example:\n    endpoints:\n      - url: ${tokenMirror.url}\n        mirror: true\n        token: mirror-token\n      - url: ${origin.url}\n`;
    const up2 = config(yaml2, { STEVEDORE_UPSTREAM_REG_EXAMPLE_USERNAME: 'alice', STEVEDORE_UPSTREAM_REG_EXAMPLE_PASSWORD: 'origin-pw' })['reg.example']!;
    assert.deepEqual(up2.endpoints?.[0]?.credentials, { username: undefined, password: undefined, token: 'mirror-token' });
    assert.deepEqual(up2.endpoints?.[1]?.credentials, { username: 'alice', password: 'origin-pw', token: undefined });
    assert.equal((await chain().send(up2, 'team/app', '/manifests/v1', 'GET')).status, 200);
    assert.deepEqual(
      tokenMirror.seen.map((s) => s.authorization),
      ['Bearer mirror-token'],
    );
  });

  test('each endpoint has its own circuit breaker: an open mirror is skipped, the origin keeps serving', async () => {
    const closedPort = await freePort();
    const origin = await endpoint(ok('o'));
    servers.push(origin.server);
    const up = config(
      `upstreams:\n  docker.io:\n    endpoints:\n      - url: http://127.0.0.1:${closedPort}\n        mirror: true\n      - url: ${origin.url}\n`,
    )['docker.io']!;
    const breaker = new CircuitBreaker({ failures: 2, cooldownMs: 60_000 });
    const c = chain(breaker);
    for (let i = 0; i < 4; i++) assert.equal((await c.send(up, 'library/a', '/manifests/1', 'GET')).status, 200);
    const mirrorName = `docker.io@127.0.0.1:${closedPort}`;
    const states = Object.fromEntries(breaker.snapshot().map((x) => [x.upstream, { open: x.open, failures: x.failures }]));
    assert.deepEqual(states, {
      [mirrorName]: { open: true, failures: 2 },
      [`docker.io@${new URL(origin.url).host}`]: { open: false, failures: 0 },
    });
    assert.equal(origin.seen.length, 4);
  });
});
