// podman pulls zstd:chunked images through stevedore with partial pulls enabled: multi-range 206 answers, right files.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCountingProxy, type CountingProxy } from '../helpers/counting-proxy.ts';
import { makePodman, type Podman } from '../helpers/podman.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, type TempDir } from '../helpers/tmp.ts';

describe('podman zstd:chunked partial pull through stevedore (real registry)', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let front: CountingProxy;
  let pusher: Podman;
  let puller: Podman;
  let tmp: TempDir;
  const files: Record<'a' | 'b', Record<string, Buffer>> = { a: {}, b: {} };

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    sd = await startStevedore({ upstreams: [reg.url] });
    front = await startCountingProxy(sd.url);
    pusher = makePodman();
    puller = makePodman({ partial: true });
    // Two images with one layer each: b has a's files except f3 and f7, so a partial pull of b after a fetches
    // only those two files' chunks: a Range header with several ranges.
    for (let i = 1; i <= 8; i++) files.a[`f${i}`] = randomBytes(150_000);
    files.b = { ...files.a, f3: randomBytes(150_000), f7: randomBytes(150_000) };
    for (const name of ['a', 'b'] as const) {
      const root = path.join(tmp.path, name);
      mkdirSync(root);
      for (const [f, bytes] of Object.entries(files[name])) writeFileSync(path.join(root, f), bytes);
      const tar = path.join(tmp.path, `${name}.tar`);
      const t = await runCommand('tar', ['-C', root, '-cf', tar, '.']);
      assert.equal(t.code, 0, t.stderr);
      await pusher.ok(['import', tar, `localhost/chunked-${name}:1`]);
      await pusher.ok([
        'push',
        '--tls-verify=false',
        '--compression-format',
        'zstd:chunked',
        `localhost/chunked-${name}:1`,
        `docker://${reg.host}/chunked/${name}:1`,
      ]);
    }
  });
  after(async () => {
    await Promise.allSettled([pusher?.destroy(), puller?.destroy()]);
    await Promise.allSettled([front?.stop(), sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('the second image is pulled partially with multi-range requests answered 206 multipart, and its files are right', async () => {
    const host = new URL(front.url).host;
    await puller.ok(['pull', '--tls-verify=false', `${host}/chunked/a:1`]);
    front.reset();
    const log = await puller.run(['pull', '--log-level', 'debug', '--tls-verify=false', `${host}/chunked/b:1`]);
    assert.equal(log.code, 0, log.stderr);
    assert.match(log.stderr, /Retrieved partial blob/, 'podman used a partial pull');
    const multi = front.requests().filter((r) => r.path.includes('/blobs/') && r.range?.includes(','));
    assert.ok(multi.length > 0, `a multi-range request was made: ${JSON.stringify(front.requests())}`);
    for (const r of multi) {
      assert.equal(r.status, 206);
      assert.match(r.contentType ?? '', /^multipart\/byteranges; boundary=/);
    }
    const mounted = (await puller.ok(['image', 'mount', `${host}/chunked/b:1`])).trim();
    try {
      for (const [f, bytes] of Object.entries(files.b)) assert.ok(readFileSync(path.join(mounted, f)).equals(bytes), f);
    } finally {
      await puller.run(['image', 'unmount', `${host}/chunked/b:1`]);
    }
  });
});
