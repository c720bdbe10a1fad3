// zeroCopy() on a real socket pair: exact bytes of a range, a cancel that stops the transfer, the copy fallback
// when no descriptor is left, and a descriptor that cannot be sent from (EINVAL) turning sendfile off.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { sendfileUnavailable, zeroCopy } from '../../../src/sendfile/native.ts';

/** A connected pair on 127.0.0.1: `server` sends, `client` receives. */
async function pair(): Promise<{ server: Socket; client: Socket; close(): void }> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => srv.once('connection', r));
  const client = connect((srv.address() as { port: number }).port, '127.0.0.1');
  const server = await accepted;
  return {
    server,
    client,
    close() {
      server.destroy();
      client.destroy();
      srv.close();
    },
  };
}

describe('zeroCopy (the sendfile addon)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stevedore-sendfile-'));
  const bytes = randomBytes(8 << 20);
  const file = path.join(dir, 'blob');
  let fd: number;
  before(() => {
    writeFileSync(file, bytes);
    fd = openSync(file, 'r');
  });
  after(() => closeSync(fd));

  test('the addon is built and loaded', () => {
    assert.equal(sendfileUnavailable(), undefined);
  });

  test('a range arrives exact, and every byte is reported', async () => {
    const p = await pair();
    try {
      const got: Buffer[] = [];
      p.client.on('data', (b: Buffer) => got.push(b));
      let reported = 0;
      const z = zeroCopy(p.server, fd, 1000, 5_000_999, (n) => (reported += n));
      assert.ok(z);
      await z.done;
      assert.equal(reported, 5_000_000);
      p.server.end();
      await new Promise((r) => p.client.once('end', r));
      assert.ok(Buffer.concat(got).equals(bytes.subarray(1000, 5_001_000)));
    } finally {
      p.close();
    }
  });

  test('cancel stops a transfer the client does not read: done rejects with the reason', async () => {
    const p = await pair();
    try {
      p.client.pause();
      const z = zeroCopy(p.server, fd, 0, bytes.length - 1, () => undefined)!;
      setTimeout(() => z.cancel(new Error('stop')), 200);
      await assert.rejects(z.done, /stop/);
    } finally {
      p.close();
    }
  });

  test('no descriptor left to duplicate the socket with: the range is copied through Node instead, exact', async () => {
    const p = await pair();
    const fillers: number[] = [];
    // This test file runs in its own process: lower its open-file limit, then use every descriptor up.
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))![1]!;
    const lowered = spawnSync('prlimit', ['--pid', String(process.pid), '--nofile=256:']);
    assert.equal(lowered.status, 0, String(lowered.stderr));
    try {
      for (;;) {
        try {
          fillers.push(openSync(file, 'r'));
        } catch (e) {
          assert.equal((e as NodeJS.ErrnoException).code, 'EMFILE');
          break;
        }
      }
      const got: Buffer[] = [];
      p.client.on('data', (b: Buffer) => got.push(b));
      let reported = 0;
      await zeroCopy(p.server, fd, 10, 3_000_009, (n) => (reported += n))!.done;
      assert.equal(reported, 3_000_000);
      p.server.end();
      await new Promise((r) => p.client.once('end', r));
      assert.ok(Buffer.concat(got).equals(bytes.subarray(10, 3_000_010)));
    } finally {
      for (const f of fillers) closeSync(f);
      spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${soft}:`]);
      p.close();
    }
  });

  test('a descriptor sendfile cannot read from (a directory: EINVAL) fails that send and turns sendfile off', async () => {
    const p = await pair();
    const dirFd = openSync(dir, 'r');
    try {
      await assert.rejects(zeroCopy(p.server, dirFd, 0, 99, () => undefined)!.done, /sendfile: EINVAL/);
      assert.match(sendfileUnavailable() ?? '', /EINVAL.*copied through Node/);
    } finally {
      closeSync(dirFd);
      p.close();
    }
  });
});
