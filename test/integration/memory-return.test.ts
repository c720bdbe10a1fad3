// Memory under a burst of clients that ask for a cached blob and never read: copied through Node (src/obs/reclaim.ts,
// MALLOC_ENV in src/cli/serve.ts) RSS returns near the level before they came; sent by sendfile(2) it never rises.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { get, sha256 } from '../helpers/http.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { sleep, waitFor } from '../helpers/tmp.ts';

const MiB = 1 << 20;
const rss = (pid: number): number => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** A socket that sends one GET and never reads the answer. */
function stalled(port: number, path: string): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      s.pause();
      resolve(s);
    });
    s.on('error', () => resolve(s));
  });
}

describe('memory after stalled clients leave', () => {
  let sd: StevedoreProcess | undefined;
  let fake: FakeUpstream | undefined;
  const socks: Socket[] = [];
  after(async () => {
    for (const s of socks) s.destroy();
    await sd?.stop();
    await fake?.stop();
  });

  /** A cached 32 MiB blob on a fresh server: its path and the RSS at rest before any stalled client. */
  async function cachedBlob(config: Record<string, unknown>): Promise<{ path: string; digest: string; before: number }> {
    fake = await startFakeUpstream();
    const blob = randomBytes(32 * MiB);
    const digest = fake.addBlob('big/x', blob);
    sd = await startStevedore({ upstreams: [`${fake.host}=${fake.url}`], config });
    const path = `/v2/${fake.host}/big/x/blobs/${digest}`;
    const first = await get(`${sd.url}${path}`);
    assert.equal(first.status, 200);
    assert.equal(sha256(first.body), digest);
    await sleep(1_500);
    return { path, digest, before: rss(sd.pid) };
  }

  async function stop(): Promise<void> {
    for (const s of socks.splice(0)) s.destroy();
    await sd?.stop();
    await fake?.stop();
    sd = undefined;
    fake = undefined;
  }

  test('copied through Node: 200 non-reading clients of a cached 32 MiB blob raise RSS; after they close it comes back within 40 MiB of before', async () => {
    const { path, digest, before } = await cachedBlob({ server: { sendfile: false } });
    const sdp = sd!;
    for (let i = 0; i < 200; i++) socks.push(await stalled(sdp.port, path));
    // Each holds a send buffer or two while its socket is full: well over 100 MiB together.
    const p = sdp.pid;
    const peak = await waitFor('RSS to rise', async () => (rss(p) > before + 100 * MiB ? rss(p) : undefined), 20_000, 100);
    for (const s of socks.splice(0)) s.destroy();
    const settled = await waitFor('RSS to come back', async () => (rss(p) < before + 40 * MiB ? rss(p) : undefined), 20_000, 250).catch(() => rss(p));
    assert.ok(
      settled < before + 40 * MiB,
      `RSS ${(before / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB with the clients, ${(settled / MiB).toFixed(0)} MiB after they left`,
    );
    // And the server still serves the blob whole.
    const again = await get(`${sdp.url}${path}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), digest);
    await stop();
  });

  test('sent by sendfile(2): 200 non-reading clients of the same blob leave RSS within 30 MiB of before (no buffer in the process)', async () => {
    const { path, digest, before } = await cachedBlob({});
    const sdp = sd!;
    const fds = (): number => readdirSync(`/proc/${sdp.pid}/fd`).length;
    const idle = fds();
    for (let i = 0; i < 200; i++) socks.push(await stalled(sdp.port, path));
    // Every one is being answered: its socket, the blob's handle and the transfer's duplicate of the socket are open.
    await waitFor('200 transfers in flight', async () => fds() >= idle + 3 * 200 || undefined, 15_000, 100);
    let peak = 0;
    for (const end = Date.now() + 3_000; Date.now() < end; await sleep(100)) peak = Math.max(peak, rss(sdp.pid));
    assert.ok(peak < before + 30 * MiB, `RSS ${(before / MiB).toFixed(0)} MiB before, ${(peak / MiB).toFixed(0)} MiB with 200 stalled clients`);
    // Others are still served whole.
    const again = await get(`${sdp.url}${path}`);
    assert.equal(again.status, 200);
    assert.equal(sha256(again.body), digest);
    await stop();
  });
});
