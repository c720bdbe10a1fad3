// Server socket limits against slow and idle clients (src/cli/connections.ts): a slowloris of more half-open
// connections than the process has file descriptors, header / keep-alive / stall timeouts.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, metricValue, sha256 } from '../helpers/http.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

/** Opens a socket that sends the start of a request's headers and never finishes them; `closed` flips when the server closes it. */
function halfOpen(port: number): Promise<{ sock: Socket; closed: () => boolean }> {
  return new Promise((resolve) => {
    let closed = false;
    const sock = connect(port, '127.0.0.1', () => {
      sock.write('GET /v2/ HTTP/1.1\r\nHost: attacker\r\n');
      resolve({ sock, closed: () => closed });
    });
    sock.on('error', () => undefined);
    sock.resume(); // read what the server sends (a 408), so its close is seen
    sock.on('close', () => {
      closed = true;
      resolve({ sock, closed: () => closed });
    });
  });
}

const metric = (sd: StevedoreProcess, name: string): Promise<number> => metricValue(sd.url, name);

describe('server socket limits', () => {
  const socks: Socket[] = [];
  let sd: StevedoreProcess | undefined;
  let fake: FakeUpstream | undefined;
  after(async () => {
    for (const s of socks) s.destroy();
    await sd?.stop();
    await fake?.stop();
  });

  test('slowloris past the fd limit (256): the oldest idle connections are evicted, a legitimate client is served during the attack', async () => {
    // Default cap: half the open-file limit (128). Header timeouts are long so that only the cap can save us.
    sd = await startStevedore({ wrap: ['prlimit', '--nofile=256:256'], config: { server: { headersTimeout: 120_000, requestTimeout: 120_000 } } });
    const attackers: { sock: Socket; closed: () => boolean }[] = [];
    for (let i = 0; i < 300; i++) {
      const a = await halfOpen(sd.port);
      socks.push(a.sock);
      attackers.push(a);
    }
    // 300 - 128 of them are closed by the server as newer ones arrive (an fd limit alone would lock everyone out).
    await waitFor('evictions', async () => attackers.filter((a) => a.closed()).length >= 300 - 128 || undefined, 15_000);
    const r = await request(`${sd.url}/v2/`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.statusCode, 200);
    await r.body.dump();
    const stillOpen = attackers.filter((a) => !a.closed()).length;
    assert.ok(stillOpen >= 100, `the attack was still going on (${stillOpen} half-open connections held) while the client was served`);
    assert.ok((await metric(sd, 'stevedore_connections_closed_total{reason="evicted"}')) >= 300 - 128);
    for (const s of socks.splice(0)) s.destroy();
    await sd.stop();
    sd = undefined;
  });

  test('header, keep-alive and stall timeouts close slow, idle and non-reading clients', async () => {
    fake = await startFakeUpstream();
    const bytes = randomBytes(16 << 20);
    const d = fake.addBlob('big/x', bytes);
    sd = await startStevedore({
      upstreams: [fake.url],
      config: { server: { headersTimeout: 1_000, requestTimeout: 1_000, keepAliveTimeout: 1_000, stallTimeout: 1_500 } },
    });
    const blob = await get(`${sd.url}/v2/big/x/blobs/${d}`);
    assert.equal(sha256(blob.body), d);

    // Headers never completed: closed by the server.
    const slow = await halfOpen(sd.port);
    socks.push(slow.sock);
    await waitFor('the half-open socket to be closed', async () => slow.closed() || undefined, 15_000);

    // Idle keep-alive: one request answered, then the connection is closed by the server.
    const ka = await new Promise<{ sock: Socket; closed: () => boolean; got: () => string }>((resolve) => {
      let closed = false;
      let got = '';
      const sock = connect(sd!.port, '127.0.0.1', () => {
        sock.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
        resolve({ sock, closed: () => closed, got: () => got });
      });
      sock.on('data', (b: Buffer) => (got += b.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => (closed = true));
    });
    socks.push(ka.sock);
    await waitFor('the idle keep-alive connection to be closed', async () => (ka.closed() && ka.got().startsWith('HTTP/1.1 200')) || undefined, 15_000);

    // A client that asks for 16 MiB and never reads: the response stalls and the server closes the connection
    // (the paused client notices only when it reads again: it then gets less than the blob, and the close).
    let received = 0;
    let closed = false;
    const stalled = connect(sd.port, '127.0.0.1', () => {
      stalled.write(`GET /v2/big/x/blobs/${d} HTTP/1.1\r\nHost: x\r\n\r\n`);
      stalled.pause();
    });
    stalled.on('error', () => undefined);
    stalled.on('close', () => (closed = true));
    socks.push(stalled);
    await waitFor(
      'the stalled response to be cut',
      async () => (await metric(sd!, 'stevedore_connections_closed_total{reason="stalled"}')) >= 1 || undefined,
      15_000,
    );
    stalled.on('data', (b: Buffer) => (received += b.length));
    stalled.resume();
    await waitFor('the client to see the close', async () => closed || undefined, 15_000);
    assert.ok(received < bytes.length, `${received} bytes: not the whole blob`);
    // The server is fine afterwards.
    const again = await get(`${sd.url}/v2/big/x/blobs/${d}`);
    assert.equal(sha256(again.body), d);
  });
});
