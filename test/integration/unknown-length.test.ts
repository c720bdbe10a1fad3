// Blobs the upstream sends without Content-Length (chunked, or closed to end): the last byte is still held back
// until the digest matched, and a download that does not end is cut at the storage budget, not the disk.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../src/oci/digest.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';
import { waitFor } from '../helpers/tmp.ts';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Bytes of every file below dir (temp and partial downloads). */
function bytesBelow(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) if (e.isFile()) n += statSync(path.join(e.parentPath, e.name)).size;
  return n;
}

/**
 * HTTP/1.0 GET on a raw socket: the head and the body (no Content-Length: it ends at the close). Whether the close
 * was a reset cannot be told reliably (a reset that arrives before the client read everything may read as an end),
 * so a failed body is one that is short: its last byte is held back until verified.
 */
function get10(url: string): Promise<{ head: string; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(`GET ${u.pathname} HTTP/1.0\r\nHost: x\r\n\r\n`));
    const chunks: Buffer[] = [];
    s.setTimeout(20_000, () => s.destroy(new Error('no end within 20 s')));
    s.on('data', (c: Buffer) => chunks.push(c));
    const done = (): void => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      resolve({ head: all.subarray(0, end).toString(), body: all.subarray(end + 4) });
    };
    s.on('close', () => done());
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
  });
}

describe('blobs without Content-Length from the upstream', () => {
  let upstream: Server;
  let base: string;
  let sd: InProcess;
  const good = randomBytes(3 << 20);
  const goodDigest = sha256(good);
  // The bytes sent for this digest end with a wrong byte.
  const bad = randomBytes(3 << 20);
  const badDigest = sha256(bad);
  const endlessDigest = sha256(Buffer.from('never ends'));
  let endlessSent = 0;

  before(async () => {
    upstream = createServer((req, res) => {
      const p = req.url ?? '';
      if (p === '/v2/' || p === '/v2') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      const send = (bytes: Buffer): void => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no Content-Length
        res.end(bytes);
      };
      if (p.endsWith(goodDigest)) return send(good);
      if (p.endsWith(badDigest)) return send(Buffer.concat([bad.subarray(0, -1), Buffer.from([bad.at(-1)! ^ 0xff])]));
      if (p.endsWith(endlessDigest) && req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(1 << 20, 7);
        // Bounded for the test: 256 MiB at most, and only while stevedore reads.
        const more = (): void => {
          while (endlessSent < 256 << 20 && !res.destroyed) {
            endlessSent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', more);
          }
          res.end();
        };
        return more();
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
    sd = await startInProcess({ upstream: [base], configObject: { retries: 0, maxSize: '16MB' } });
  });
  after(async () => {
    await sd?.stop();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => upstream?.close(() => r()));
  });

  test('right bytes: the whole blob, and it is cached', async () => {
    const r = await get10(`${sd.url}/v2/u/app/blobs/${goodDigest}`);
    assert.match(r.head, /^HTTP\/1\.[01] 200/);
    assert.ok(r.body.equals(good));
    await sd.proxy.blobs.fillSettled(goodDigest as Digest);
    assert.equal(sd.meta.blobSize(goodDigest as Digest), good.length);
  });

  test('a wrong last byte never reaches the client: the body ends short', async () => {
    const r = await get10(`${sd.url}/v2/u/app/blobs/${badDigest}`);
    assert.match(r.head, /^HTTP\/1\.[01] 200/);
    assert.ok(r.body.length < bad.length, `got ${r.body.length} of ${bad.length} bytes`);
    assert.ok(r.body.equals(bad.subarray(0, r.body.length)), 'only right bytes');
    await sd.proxy.blobs.fillSettled(badDigest as Digest);
    assert.equal(sd.meta.blobSize(badDigest as Digest), undefined);
  });

  test('a download that does not end stops at the storage budget: nothing kept, the client cut off', async () => {
    const r = await get10(`${sd.url}/v2/u/app/blobs/${endlessDigest}`);
    assert.ok(r.body.length < 64 << 20, `the client got ${r.body.length} bytes`);
    await sd.proxy.blobs.fillSettled(endlessDigest as Digest);
    assert.ok(endlessSent < 64 << 20, `the upstream sent ${endlessSent} bytes past a 16 MB budget`);
    await waitFor('temp and partial files gone', () => bytesBelow(sd.store.paths.tmpDir) + bytesBelow(sd.store.paths.partialDir) === 0 || undefined, 5_000);
    assert.equal(sd.meta.blobSize(endlessDigest as Digest), undefined);
  });
});
