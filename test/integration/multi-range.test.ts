// Multi-range reads (zstd:chunked partial pulls) with curl against real bytes from the real registry through stevedore.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import type { Digest } from '../../src/oci/digest.ts';
import { pushImage, type PushedLayer } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { sleep, waitFor } from '../helpers/tmp.ts';

const run = promisify(execFile);

interface Curl {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

async function curl(url: string, range: string): Promise<Curl> {
  // -H, not -r: curl passes the header through exactly as written (malformed ones too).
  const { stdout } = await run('curl', ['-s', '-i', '--max-time', '20', '-H', `Range: ${range}`, url], { encoding: 'buffer', maxBuffer: 64 << 20 });
  const end = stdout.indexOf('\r\n\r\n');
  const lines = stdout.subarray(0, end).toString().split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  return { status: Number(lines[0]!.split(' ')[1]), headers, body: stdout.subarray(end + 4) };
}

/** Parses a multipart/byteranges body strictly (RFC 9110 §14.6 / RFC 2046 framing), returning each part. */
function parseMultipart(r: Curl): { contentType: string; contentRange: string; bytes: Buffer }[] {
  const m = /^multipart\/byteranges; boundary=([^\s;]+)$/.exec(r.headers['content-type'] ?? '');
  assert.ok(m, `content-type ${r.headers['content-type']}`);
  assert.equal(Number(r.headers['content-length']), r.body.length, 'Content-Length is the multipart body length');
  const delim = Buffer.from(`--${m[1]}`);
  const parts: { contentType: string; contentRange: string; bytes: Buffer }[] = [];
  let pos = r.body.indexOf(delim);
  assert.ok(pos === 0 || (pos === 2 && r.body.subarray(0, 2).toString() === '\r\n'), 'body starts with the delimiter');
  for (;;) {
    pos += delim.length;
    if (r.body.subarray(pos, pos + 2).toString() === '--') {
      assert.equal(r.body.subarray(pos + 2).toString(), '\r\n', 'close delimiter ends the body');
      return parts;
    }
    const headEnd = r.body.indexOf('\r\n\r\n', pos);
    const head = r.body
      .subarray(pos + 2, headEnd)
      .toString()
      .split('\r\n');
    const h = Object.fromEntries(head.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
    const cr = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(h['content-range'] ?? '');
    assert.ok(cr, `part Content-Range ${h['content-range']}`);
    const len = Number(cr[2]) - Number(cr[1]) + 1;
    const bytes = r.body.subarray(headEnd + 4, headEnd + 4 + len);
    pos = headEnd + 4 + len;
    assert.equal(r.body.subarray(pos, pos + 2).toString(), '\r\n', 'CRLF before the next delimiter');
    pos += 2;
    assert.ok(r.body.subarray(pos, pos + delim.length).equals(delim), 'next delimiter');
    parts.push({ contentType: h['content-type'] ?? '', contentRange: h['content-range']!, bytes });
  }
}

describe('multi-range blob reads (real registry, curl)', () => {
  let reg: Registry;
  let sd: InProcess;
  let big: PushedLayer;
  let bigBytes: Buffer;
  let small: PushedLayer;
  let smallBytes: Buffer;
  const url = (d: string): string => `${sd.url}/v2/mr/app/blobs/${d}`;
  const blobGets = (d: string): number => reg.requests().filter((q) => q.method === 'GET' && q.uri === `/v2/mr/app/blobs/${d}`).length;

  before(async () => {
    reg = await startRegistry();
    const img = await pushImage(reg.url, 'mr/app', 'v1', {
      layers: [
        { seed: 21, sizeBytes: 3 << 20, compression: 'none' },
        { seed: 22, sizeBytes: 20_000, compression: 'none' },
      ],
      mediaTypes: 'oci',
    });
    [big, small] = img.layers as [PushedLayer, PushedLayer];
    bigBytes = readFileSync(big.path!);
    smallBytes = readFileSync(small.path!);
    sd = await startInProcess({ upstream: [reg.url], configObject: { retries: 0 } });
  });
  after(async () => {
    await sd?.stop();
    await reg?.destroy();
  });

  test('a miss with two ranges: 206 multipart/byteranges with the right slices, one upstream GET', async () => {
    const r = await curl(url(big.digest), 'bytes=0-0,5-9');
    assert.equal(r.status, 206, r.body.toString().slice(0, 300));
    const parts = parseMultipart(r);
    assert.deepEqual(
      parts.map((p) => p.contentRange),
      [`bytes 0-0/${big.size}`, `bytes 5-9/${big.size}`],
    );
    assert.ok(parts[0]!.bytes.equals(bigBytes.subarray(0, 1)));
    assert.ok(parts[1]!.bytes.equals(bigBytes.subarray(5, 10)));
    for (const p of parts) assert.equal(p.contentType, 'application/octet-stream');
    assert.equal(blobGets(big.digest), 1);
  });

  test('cached blobs (on disk and in memory): 206 multipart for several ranges, suffix and open-ended included', async () => {
    await curl(url(small.digest), 'bytes=0-0'); // caches the small one
    // A response ends at verification; the commit follows: wait for both fills to be in the store.
    await sd.proxy.blobs.fillSettled(big.digest as Digest);
    await sd.proxy.blobs.fillSettled(small.digest as Digest);
    for (const [layer, bytes] of [
      [big, bigBytes],
      [small, smallBytes],
    ] as const) {
      const n = layer.size;
      const r = await curl(url(layer.digest), `bytes=0-0, 5-9,1000-1999 ,${n - 100}-`);
      assert.equal(r.status, 206);
      assert.equal(r.headers['x-stevedore-cache'], 'hit');
      const parts = parseMultipart(r);
      assert.deepEqual(
        parts.map((p) => p.contentRange),
        [`bytes 0-0/${n}`, `bytes 5-9/${n}`, `bytes 1000-1999/${n}`, `bytes ${n - 100}-${n - 1}/${n}`],
      );
      assert.ok(
        Buffer.concat(parts.map((p) => p.bytes)).equals(
          Buffer.concat([bytes.subarray(0, 1), bytes.subarray(5, 10), bytes.subarray(1000, 2000), bytes.subarray(n - 100)]),
        ),
      );
      const suffix = parseMultipart(await curl(url(layer.digest), 'bytes=10-19,-5'));
      assert.ok(suffix[1]!.bytes.equals(bytes.subarray(n - 5)));
    }
    assert.equal(blobGets(big.digest), 1, 'served from the cache');
  });

  test('one satisfiable range among several: a plain 206; none: 416', async () => {
    const n = big.size;
    const one = await curl(url(big.digest), `bytes=10-19,${n + 10}-${n + 20}`);
    assert.equal(one.status, 206);
    assert.equal(one.headers['content-range'], `bytes 10-19/${n}`);
    assert.ok(one.body.equals(bigBytes.subarray(10, 20)));
    const none = await curl(url(big.digest), `bytes=${n}-,${n + 5}-${n + 9}`);
    assert.equal(none.status, 416);
    assert.equal(none.headers['content-range'], `bytes */${n}`);
  });

  test('malformed, unsupported unit, overlapping or out-of-order ranges are ignored: 200 with the whole blob', async () => {
    for (const range of ['bytes=abc', 'bytes=5-2', 'bytes=0-1,,x', 'items=0-5', 'bytes=0-9,5-20', 'bytes=100-199,0-9', 'bytes=5-2,0-1']) {
      const r = await curl(url(small.digest), range);
      assert.equal(r.status, 200, range);
      assert.equal(r.headers['content-range'], undefined);
      assert.ok(r.body.equals(smallBytes), range);
    }
  });

  test('clients gone before their answers start leave the cached blob free (not held open: evictable)', async () => {
    await curl(url(big.digest), 'bytes=0-0');
    await sd.proxy.blobs.fillSettled(big.digest as Digest);
    const { port } = new URL(sd.url);
    // Request sent, connection reset at once: the answer is started for a response already closed.
    for (const range of ['Range: bytes=0-1,100-200\r\n', 'Range: bytes=0-1\r\n', '']) {
      for (let i = 0; i < 20; i++) {
        const s = net.connect(Number(port), '127.0.0.1');
        await new Promise<void>((resolve) => s.once('connect', resolve));
        s.write(`GET /v2/mr/app/blobs/${big.digest} HTTP/1.1\r\nHost: x\r\n${range}\r\n`);
        s.resetAndDestroy();
      }
      await sleep(300);
      await waitFor(`no request whose client is gone to hold the blob (${range.trim() || 'whole'})`, () => !sd.proxy.blobs.inUse(big.digest as Digest), 5_000);
    }
    const r = await curl(url(big.digest), 'bytes=0-1,100-200');
    assert.equal(r.status, 206);
    assert.ok(Buffer.concat(parseMultipart(r).map((p) => p.bytes)).equals(Buffer.concat([bigBytes.subarray(0, 2), bigBytes.subarray(100, 201)])));
  });

  test("If-Range: the blob's ETag keeps the Range; another validator, a weak one or a date gets the whole blob", async () => {
    await curl(url(small.digest), 'bytes=0-0');
    await sd.proxy.blobs.fillSettled(small.digest as Digest);
    const get = async (ifRange: string) => {
      const res = await request(url(small.digest), { headers: { range: 'bytes=0-9', 'if-range': ifRange }, signal: AbortSignal.timeout(20_000) });
      return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
    };
    const same = await get(`"${small.digest}"`);
    assert.equal(same.status, 206);
    assert.ok(same.body.equals(smallBytes.subarray(0, 10)));
    for (const other of [`"sha256:${'0'.repeat(64)}"`, `W/"${small.digest}"`, 'Wed, 21 Oct 2015 07:28:00 GMT']) {
      const r = await get(other);
      assert.equal(r.status, 200, other);
      assert.ok(r.body.equals(smallBytes), other);
    }
  });
});
