// Hits and misses by sendfile(2) (src/sendfile): exact bytes for curl and undici, ranges, keep-alive and pipelined order,
// the stall timeout (a slow reader is not cut, a reader that stopped is), descriptors released, and the copy path.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, metricValue, sha256 } from '../helpers/http.ts';
import { pushBigLayer, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startInProcess, startStevedore, type InProcess, type StevedoreProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

const run = promisify(execFile);
const SENT = 'stevedore_sendfile_bytes_total';

async function curl(url: string, ...args: string[]): Promise<{ body: Buffer; meta: string[] }> {
  const { stdout, stderr } = await run(
    'curl',
    ['-sS', '--max-time', '30', '-o', '-', '-w', '%{stderr}%{http_code} %{num_connects} %header{x-stevedore-cache}\\n', ...args, url],
    {
      encoding: 'buffer',
      maxBuffer: 64 << 20,
    },
  );
  return { body: stdout, meta: stderr.toString().trim().split('\n') };
}

/** Reads a whole connection (the last request asks to close it) and splits it into Content-Length-framed responses. */
async function pipelined(port: number, requests: string[]): Promise<{ head: string; body: Buffer }[]> {
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, '127.0.0.1', () => sock.write(requests.join('')));
    sock.setTimeout(20_000, () => sock.destroy(new Error('pipelined responses timed out')));
    sock.on('data', (b: Buffer) => chunks.push(b));
    sock.on('error', reject);
    sock.on('end', () => resolve(Buffer.concat(chunks)));
  });
  const out: { head: string; body: Buffer }[] = [];
  for (let at = 0; at < raw.length; ) {
    const end = raw.indexOf('\r\n\r\n', at);
    assert.ok(end > at, 'a complete header block');
    const head = raw.subarray(at, end).toString();
    const len = Number(/^content-length: (\d+)$/im.exec(head)?.[1]);
    out.push({ head, body: raw.subarray(end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return out;
}

/** GET on a new connection, reading `perTick` bytes then pausing `tickMs` (a steady slow client, not a burst). */
async function pacedRead(port: number, path: string, perTick: number, tickMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let inTick = 0;
    const sock = connect(port, '127.0.0.1', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    const guard = setTimeout(() => sock.destroy(new Error('the paced read took over 30 s')), 30_000);
    sock.on('data', (b: Buffer) => {
      chunks.push(b);
      inTick += b.length;
      if (inTick < perTick) return;
      inTick = 0;
      sock.pause();
      setTimeout(() => sock.resume(), tickMs);
    });
    sock.on('error', reject);
    sock.on('close', () => {
      clearTimeout(guard);
      resolve(Buffer.concat(chunks));
    });
  });
}

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

describe('warm hits by sendfile(2)', () => {
  let registry: Registry;
  let img: PushedImage;
  let sd: StevedoreProcess;
  let bytes: Buffer;
  let path: string;

  before(async () => {
    registry = await startRegistry();
    img = await pushBigLayer(registry.url, 'zc/app', 'v1', 24, { seed: 11 });
    bytes = readFileSync(img.layers[0]!.path!);
    sd = await startStevedore({ upstreams: [registry.url], config: { server: { stallTimeout: 1_000 } } });
    path = `/v2/${img.repo}/blobs/${img.layers[0]!.digest}`;
    const miss = await get(`${sd.url}${path}`);
    assert.equal(sha256(miss.body), img.layers[0]!.digest);
    await waitFor(
      'the blob to be committed',
      async () => (await get(`${sd.url}${path}`, {}, 'HEAD')).headers['x-stevedore-cache'] === 'hit' || undefined,
      10_000,
      50,
    );
  });
  after(async () => {
    await sd?.stop();
    await registry?.destroy();
  });

  test('the startup line says how hits leave', () => {
    assert.match(sd.logs(), /"hits":"sendfile"/);
  });

  test('a hit: exact bytes to curl and to undici, every byte counted as sent by the kernel', async () => {
    const before = await metricValue(sd.url, SENT);
    const viaCurl = await curl(`${sd.url}${path}`);
    assert.deepEqual(viaCurl.meta, ['200 1 hit']);
    assert.ok(viaCurl.body.equals(bytes), 'curl got the exact bytes');
    const viaUndici = await get(`${sd.url}${path}`);
    assert.equal(viaUndici.status, 200);
    assert.equal(viaUndici.error, undefined);
    assert.ok(viaUndici.body.equals(bytes), 'undici got the exact bytes');
    assert.equal((await metricValue(sd.url, SENT)) - before, 2 * bytes.length);
  });

  test('ranges: a middle slice and a suffix, exact', async () => {
    const before = await metricValue(sd.url, SENT);
    const mid = await get(`${sd.url}${path}`, { range: 'bytes=1000000-3000000' });
    assert.equal(mid.status, 206);
    assert.equal(mid.headers['content-range'], `bytes 1000000-3000000/${bytes.length}`);
    assert.ok(mid.body.equals(bytes.subarray(1_000_000, 3_000_001)));
    const tail = await get(`${sd.url}${path}`, { range: 'bytes=-300000' });
    assert.equal(tail.status, 206);
    assert.ok(tail.body.equals(bytes.subarray(bytes.length - 300_000)));
    assert.equal((await metricValue(sd.url, SENT)) - before, 2_000_001 + 300_000);
  });

  test('one connection: hits reuse it, and pipelined responses arrive whole and in order', async () => {
    const two = await curl(`${sd.url}${path}`, `${sd.url}${path}`);
    assert.ok(two.body.equals(Buffer.concat([bytes, bytes])));
    assert.deepEqual(two.meta, ['200 1 hit', '200 0 hit'], 'the second hit reused the connection');
    const req = (p: string, extra = ''): string => `GET ${p} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
    const res = await pipelined(sd.port, [req(path, 'Range: bytes=0-99\r\n'), req(path), req('/v2/'), req(path, 'Range: bytes=-5\r\nConnection: close\r\n')]);
    assert.equal(res.length, 4);
    assert.match(res[0]!.head, /^HTTP\/1\.1 206/);
    assert.ok(res[0]!.body.equals(bytes.subarray(0, 100)));
    assert.match(res[1]!.head, /^HTTP\/1\.1 200/);
    assert.ok(res[1]!.body.equals(bytes));
    assert.match(res[2]!.head, /^HTTP\/1\.1 200/);
    assert.match(res[3]!.head, /^HTTP\/1\.1 206/);
    assert.ok(res[3]!.body.equals(bytes.subarray(bytes.length - 5)));
  });

  test('a slow reader that keeps reading outlives the stall timeout (progress re-arms it)', async () => {
    // 24 MiB at about 5 MiB/s: about 5 s, five times the 1 s stall timeout, with the kernel sending every byte.
    const raw = await pacedRead(sd.port, path, 512 << 10, 100);
    const split = raw.indexOf('\r\n\r\n');
    assert.match(raw.subarray(0, split).toString(), /^HTTP\/1\.1 200/);
    assert.ok(raw.subarray(split + 4).equals(bytes), 'the whole blob, exact');
  });

  test('a reader that stopped is cut at the stall timeout; its descriptors are released; others are served meanwhile', async () => {
    const baseline = openFds(sd.pid);
    const stalledBefore = await metricValue(sd.url, 'stevedore_connections_closed_total{reason="stalled"}');
    let closed = false;
    const sock = connect(sd.port, '127.0.0.1', () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      sock.pause();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => (closed = true));
    try {
      const other = await get(`${sd.url}${path}`, { range: 'bytes=0-9' });
      assert.ok(other.body.equals(bytes.subarray(0, 10)), 'another client is served during the stall');
      await waitFor(
        'the stalled response to be cut',
        async () => (await metricValue(sd.url, 'stevedore_connections_closed_total{reason="stalled"}')) > stalledBefore || undefined,
        15_000,
      );
      // The cut closes the connection itself (a duplicated socket held by the transfer would keep it open).
      let received = 0;
      sock.on('data', (b: Buffer) => (received += b.length));
      sock.resume();
      await waitFor('the client to see the close', async () => closed || undefined, 15_000);
      assert.ok(received < bytes.length, `${received} bytes after the cut: the transfer stopped, it did not run on`);
      await waitFor('descriptors back to the baseline', async () => openFds(sd.pid) <= baseline || undefined, 10_000, 50);
    } finally {
      sock.destroy();
    }
  });

  test('server.sendfile: false copies through Node: the same bytes, nothing counted as sent by the kernel', async () => {
    const copy = await startStevedore({ upstreams: [registry.url], dataDir: sd.dataDir, config: { server: { sendfile: false } } });
    try {
      const r = await curl(`${copy.url}${path}`);
      assert.deepEqual(r.meta, ['200 1 hit']);
      assert.ok(r.body.equals(bytes));
      assert.equal(await metricValue(copy.url, SENT), 0);
      assert.match(copy.logs(), /"hits":"copied \(server.sendfile: false\)"/);
    } finally {
      await copy.stop();
    }
  });
});

describe('misses followed by sendfile(2) from the temp file', () => {
  let fake: FakeUpstream;
  let sd: InProcess;
  before(async () => {
    fake = await startFakeUpstream();
    sd = await startInProcess({ upstream: [fake.url] });
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
  });
  const url = (repo: string, d: string): string => `${sd.url}/v2/${repo}/blobs/${d}`;

  test('a slow upstream: the first bytes reach the client long before the download ends; every byte exact, one upstream GET', async () => {
    const bytes = randomBytes(4 << 20);
    const d = fake.addBlob('slow/x', bytes);
    // 256 KiB per tick: the download takes seconds.
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 256 << 10, tickMs: 100 });
    const before = await metricValue(sd.url, SENT);
    const started = performance.now();
    let firstByteMs = 0;
    const res = await request(url('slow/x', d), { signal: AbortSignal.timeout(20_000) });
    const chunks: Buffer[] = [];
    for await (const c of res.body) {
      if (chunks.length === 0) firstByteMs = performance.now() - started;
      chunks.push(c as Buffer);
    }
    const totalMs = performance.now() - started;
    assert.equal(res.statusCode, 200);
    assert.ok(Buffer.concat(chunks).equals(bytes), 'exact bytes');
    assert.ok(firstByteMs < totalMs / 2, `first byte after ${firstByteMs.toFixed(0)} ms of ${totalMs.toFixed(0)} ms`);
    assert.equal((await metricValue(sd.url, SENT)) - before, bytes.length, 'the miss left by sendfile');
    assert.equal(fake.count('GET', `/blobs/${d}`), 1);
  });

  test('three clients of one miss (one of them a Range) share one download and get exact bytes', async () => {
    const bytes = randomBytes(6 << 20);
    const d = fake.addBlob('many/x', bytes);
    fake.setFault(d, { kind: 'slow-body', bytesPerTick: 1 << 20, tickMs: 50 });
    const [a, b, r] = await Promise.all([get(url('many/x', d)), get(url('many/x', d)), get(url('many/x', d), { range: 'bytes=100-2000099' })]);
    assert.ok(a.body.equals(bytes) && b.body.equals(bytes), 'whole bodies exact');
    assert.equal(r.status, 206);
    assert.ok(r.body.equals(bytes.subarray(100, 2_000_100)), 'the range exact');
    assert.equal(fake.count('GET', `/blobs/${d}`), 1);
  });

  test('wrong bytes from upstream: the client gets the body without its last byte, never a clean end', async () => {
    const bytes = randomBytes(3 << 20);
    const d = fake.addBlob('bad/x', bytes);
    fake.setFault(d, { kind: 'wrong-bytes' });
    const r = await get(url('bad/x', d));
    assert.equal(r.status, 200);
    assert.notEqual(r.error, undefined, 'the response failed');
    assert.ok(r.body.length < bytes.length, `${r.body.length} of ${bytes.length} bytes`);
    fake.clearFault(d);
    assert.ok((await get(url('bad/x', d))).body.equals(bytes), 'the next request downloads it again, exact');
  });
});
