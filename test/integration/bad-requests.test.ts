// What Node's HTTP parser or the HTTP adapter refuses before stevedore sees a request (headers too large, a malformed
// request line, an unknown method, a target that is no URL, CONNECT) still gets a status and an OCI error body, on
// the real server (`serve`, one process).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { freePort } from '../helpers/tmp.ts';

/** Sends `raw` on a new connection and returns everything the server wrote before it closed (or 10 s passed). */
function exchange(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(raw));
    const chunks: Buffer[] = [];
    s.setTimeout(10_000, () => s.destroy(new Error('no close within 10 s')));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve(Buffer.concat(chunks).toString('latin1')) : reject(e)));
  });
}

function parse(reply: string): { status: number; headers: Record<string, string>; body: string } {
  const end = reply.indexOf('\r\n\r\n');
  assert.ok(end > 0, `an HTTP response: ${JSON.stringify(reply.slice(0, 200))}`);
  const [line, ...rest] = reply.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(rest.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { status: Number(line!.split(' ')[1]), headers, body: reply.slice(end + 4) };
}

function ociCode(r: { headers: Record<string, string>; body: string }): string {
  assert.match(r.headers['content-type'] ?? '', /^application\/json/);
  assert.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body));
  const j = JSON.parse(r.body) as { errors: { code: string; message: string; detail: unknown }[] };
  assert.equal(j.errors.length, 1);
  assert.equal(typeof j.errors[0]!.message, 'string');
  return j.errors[0]!.code;
}

describe('requests the HTTP parser refuses', () => {
  let sd: StevedoreProcess;
  before(async () => {
    sd = await startStevedore({ upstreams: [`http://127.0.0.1:${await freePort()}`] });
  });
  after(async () => {
    await sd?.stop();
  });

  test('headers over the limit: 431 with an OCI error body', async () => {
    const r = parse(await exchange(sd.port, `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
    assert.equal(r.status, 431);
    assert.equal(ociCode(r), 'UNSUPPORTED');
  });

  test('a malformed request line or an unknown method: 400 with an OCI error body', async () => {
    for (const raw of ['GARBAGE\r\n\r\n', 'FROB /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /v2/ HTTP/1.1\r\nHost x\r\n\r\n']) {
      const r = parse(await exchange(sd.port, raw));
      assert.equal(r.status, 400, raw);
      assert.equal(ociCode(r), 'UNSUPPORTED', raw);
    }
  });

  test('a target the adapter cannot make a URL of (a backslash, a bad Host): 400 with an OCI error body and the /v2/ guards', async () => {
    for (const raw of [
      'GET /v2/team\\app/manifests/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      'GET /v2/ HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n',
      'GET ftp://x/v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    ]) {
      const r = parse(await exchange(sd.port, raw));
      assert.equal(r.status, 400, raw);
      assert.equal(ociCode(r), 'UNSUPPORTED', raw);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', raw);
    }
  });

  test('CONNECT (this is not a forward proxy): 405 with an OCI error body', async () => {
    const r = parse(await exchange(sd.port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n'));
    assert.equal(r.status, 405);
    assert.equal(ociCode(r), 'UNSUPPORTED');
  });

  test('a client that pipelines thousands of requests and never reads its answers is cut off', async () => {
    const s = net.connect(sd.port, '127.0.0.1');
    await new Promise<void>((resolve) => s.once('connect', resolve));
    s.pause(); // never read
    const closed = new Promise<boolean>((resolve) => {
      s.once('close', () => resolve(true));
      setTimeout(() => resolve(false), 10_000).unref();
    });
    s.on('error', () => undefined);
    const burst = 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2_000);
    for (let i = 0; i < 10 && !s.destroyed; i++) s.write(burst);
    assert.equal(await closed, true, 'the connection is closed by the server');
    s.destroy();
    const m = await request(`${sd.url}/metrics`);
    assert.match(await m.body.text(), /stevedore_connections_closed_total\{reason="pipelined"\} 1\n/);
  });

  test('the server still answers afterwards', async () => {
    const r = parse(await exchange(sd.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    assert.equal(r.status, 200);
  });
});
