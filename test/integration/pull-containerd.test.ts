// containerd (ctr + the hosts.toml files shipped in deploy/, so requests carry ?ns=) pulls and unpacks through stevedore.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.ts';
import { pushMultiLayer, pushOciIndex, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, sleep, type TempDir } from '../helpers/tmp.ts';

// The hosts.toml "server" (containerd's fallback) is a dead port: a pull can only succeed through stevedore.
const DEAD_SERVER = 'http://127.0.0.1:9';
/** The shipped certs.d tree and the mirror URL its files name (operators replace it with their host). */
const SHIPPED_CERTS_D = path.resolve(import.meta.dirname, '../../deploy/containerd/certs.d');
const SHIPPED_MIRROR = 'http://stevedore.local:5000';

/**
 * Copies every deploy/containerd/certs.d/<dir>/hosts.toml into hostsDir, changing only the mirror URL (to the
 * test's stevedore) and the `server` line (to a dead port). _default has no `server` line, and for a loopback
 * registry containerd's implicit fallback would be the real registry over plain HTTP, so one is added there.
 * Fails if a shipped file no longer names the mirror, so the tested file cannot silently drift from the shipped one.
 */
function copyShippedHostsToml(hostsDir: string, mirrorUrl: string): string[] {
  const dirs = readdirSync(SHIPPED_CERTS_D).filter((d) => existsSync(path.join(SHIPPED_CERTS_D, d, 'hosts.toml')));
  assert.ok(dirs.includes('docker.io') && dirs.includes('_default'), `deploy certs.d has docker.io and _default: ${dirs.join(', ')}`);
  for (const dir of dirs) {
    const shipped = readFileSync(path.join(SHIPPED_CERTS_D, dir, 'hosts.toml'), 'utf8');
    assert.ok(shipped.includes(`[host."${SHIPPED_MIRROR}"]`), `deploy/containerd/certs.d/${dir}/hosts.toml names ${SHIPPED_MIRROR} as a host`);
    let text = shipped.replaceAll(SHIPPED_MIRROR, mirrorUrl.replace(/\/+$/, ''));
    const serverLine = /^server\s*=.*$/m;
    text = serverLine.test(text) ? text.replace(serverLine, `server = ${JSON.stringify(DEAD_SERVER)}`) : `server = ${JSON.stringify(DEAD_SERVER)}\n${text}`;
    mkdirSync(path.join(hostsDir, dir), { recursive: true });
    writeFileSync(path.join(hostsDir, dir, 'hosts.toml'), text);
  }
  return dirs;
}

describe('containerd through stevedore, real registry upstream', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let ctd: Containerd;
  let tmp: TempDir;
  let multi: PushedImage;
  let idx: Awaited<ReturnType<typeof pushOciIndex>>;
  let busybox: PushedImage;

  before(async () => {
    tmp = makeTempDir();
    [reg, ctd] = await Promise.all([startRegistry(), startContainerd()]);
    multi = await pushMultiLayer(reg.url, 'test/multi', 'v1', 3);
    idx = await pushOciIndex(reg.url, 'test/index', 'v1');
    busybox = await pushMultiLayer(reg.url, 'library/busybox', '1', 2);
    sd = await startStevedore({ upstreams: [reg.url, `docker.io=${reg.url}`] });
    // docker.io uses its own shipped file; the registry's 127.0.0.1:PORT has no directory, so containerd uses _default.
    const dirs = copyShippedHostsToml(tmp.path, sd.url);
    assert.ok(!dirs.includes(reg.host));
  });

  after(async () => {
    await Promise.allSettled([ctd?.stop(), sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test('ctr pulls and unpacks a multi-layer image; stevedore saw ?ns= and the second pull costs no upstream blob GET', async () => {
    const r = await ctd.pull(`${reg.host}/test/multi:v1`, { hostsDir: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    const content = await ctd.contentDigests();
    for (const d of [multi.manifestDigest, multi.configDigest, ...multi.layers.map((l) => l.digest)]) assert.ok(content.includes(d), d);
    assert.match(sd.logs(), new RegExp(`"path":"/v2/test/multi/manifests/v1".*"upstream":"${reg.host.replace('.', '\\.')}"`));
    await ctd.clearContent();
    reg.clearRequests();
    const again = await ctd.pull(`${reg.host}/test/multi:v1`, { hostsDir: tmp.path });
    assert.equal(again.code, 0, again.stderr);
    await sleep(300);
    assert.deepEqual(
      reg.requests().filter((q) => q.uri.includes('/blobs/')),
      [],
    );
    assert.ok((await ctd.contentDigests()).includes(multi.layers[0]!.digest));
  });

  test("ctr pulls one platform of an OCI index: only that platform's blobs reach the upstream", async () => {
    reg.clearRequests();
    const r = await ctd.pull(`${reg.host}/test/index:v1`, { hostsDir: tmp.path, platform: 'linux/arm64' });
    assert.equal(r.code, 0, r.stderr);
    await sleep(300);
    const fetched = new Set(
      reg
        .requests()
        .filter((q) => q.method === 'GET' && q.uri.includes('/blobs/'))
        .map((q) => q.uri.split('/').pop()),
    );
    const arm = idx.arm64;
    assert.deepEqual(fetched, new Set([arm.configDigest, ...arm.layers.map((l) => l.digest)]));
  });

  test('docker.io through a hosts.toml mirror: ?ns=docker.io and the library/ name', async () => {
    const r = await ctd.pull('docker.io/library/busybox:1', { hostsDir: tmp.path });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await ctd.contentDigests()).includes(busybox.manifestDigest));
    assert.match(sd.logs(), /"path":"\/v2\/library\/busybox\/manifests\/1".*"upstream":"docker\.io","repo":"library\/busybox"/);
  });
});
