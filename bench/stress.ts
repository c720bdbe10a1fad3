// `npm run stress`: the hostile and unlucky loads of issue 10 against the real registry (legitimate pulls) and the
// fake upstream (slow and large blobs), one fresh stevedore per scenario; bounded (about 3 minutes). Prints a table:
// peak and after-load RSS, upstream bytes, the latency of a legitimate pull during the attack, errors, and whether
// every byte the legitimate client got matched its digest.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { request } from 'undici';
import { pushImage, type PushedImage } from '../test/helpers/images.ts';
import { startFakeUpstream, type FakeUpstream } from '../test/helpers/fake-upstream.ts';
import { startRegistry } from '../test/helpers/registry.ts';
import { startStevedore, type StartOptions, type StevedoreProcess } from '../test/helpers/stevedore.ts';
import { makeTempDir, sleep, waitFor } from '../test/helpers/tmp.ts';
import { procStatusBytes, sampleRss } from './servers.ts';

const MiB = 1 << 20;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const mib = (n: number): string => `${(n / MiB).toFixed(0)} MiB`;

interface Row {
  scenario: string;
  startRss: number;
  peakRss: number;
  afterRss: number;
  upstreamBytes: string;
  pullMs: number | undefined;
  errors: number;
  verified: boolean;
  note: string;
}

async function fetchAll(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; cache?: string }> {
  const res = await request(url, { headers, signal: AbortSignal.timeout(30_000) });
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(c as Buffer);
  return { status: res.statusCode, body: Buffer.concat(chunks), cache: res.headers['x-stevedore-cache'] as string | undefined };
}

/** A legitimate pull of the registry image (manifest, config, layers), every blob checked against its digest. */
async function legitPull(sd: StevedoreProcess, img: PushedImage): Promise<{ ms: number; ok: boolean }> {
  const t = performance.now();
  try {
    const m = await fetchAll(`${sd.url}/v2/${img.repo}/manifests/v1`, { accept: img.manifestMediaType });
    let ok = m.status === 200 && sha(m.body) === img.manifestDigest;
    for (const d of [img.configDigest, ...img.layers.map((l) => l.digest)]) {
      const b = await fetchAll(`${sd.url}/v2/${img.repo}/blobs/${d}`);
      ok &&= b.status === 200 && sha(b.body) === d;
    }
    return { ms: performance.now() - t, ok };
  } catch {
    return { ms: performance.now() - t, ok: false };
  }
}

/** Raw sockets that send a request (or only part of its headers) and never read. */
function idleSockets(sd: StevedoreProcess, n: number, request: string): Promise<Socket[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect(sd.port, '127.0.0.1', () => {
            s.write(request);
            s.pause();
            resolve(s);
          });
          s.on('error', () => resolve(s));
        }),
    ),
  );
}

async function scenario(
  name: string,
  fake: FakeUpstream,
  registryUrl: string,
  img: PushedImage,
  opts: StartOptions,
  attack: (sd: StevedoreProcess) => Promise<{ stop(): Promise<void>; note?: () => Promise<string> }>,
): Promise<Row> {
  const sd = await startStevedore({ ...opts, upstreams: [registryUrl, `${fake.host}=${fake.url}`] });
  fake.reset();
  const startRss = procStatusBytes(sd.pid, 'VmRSS') ?? 0;
  const rss = sampleRss(sd.pid, 50);
  let errors = 0;
  let verified = true;
  let pullMs: number | undefined;
  let note = '';
  try {
    const a = await attack(sd);
    const pull = await legitPull(sd, img);
    pullMs = pull.ms;
    if (!pull.ok) errors++;
    verified &&= pull.ok;
    note = (await a.note?.()) ?? '';
    await a.stop();
  } catch (e) {
    errors++;
    note = `failed: ${(e as Error).message}`;
  }
  const peak = (await rss.stop()).peak;
  await sleep(3_000);
  const afterRss = procStatusBytes(sd.pid, 'VmRSS') ?? 0;
  const upstreamBytes = fake.bytesSent('/blobs/');
  await sd.stop();
  return { scenario: name, startRss, peakRss: peak, afterRss, upstreamBytes: mib(upstreamBytes), pullMs, errors, verified, note };
}

async function main(): Promise<void> {
  const deadline = setTimeout(() => {
    process.stderr.write('stress: over the 285 s bound, giving up\n');
    process.exit(1);
  }, 285_000);
  deadline.unref();
  const registry = await startRegistry();
  const fake = await startFakeUpstream();
  const rows: Row[] = [];
  try {
    const img = await pushImage(registry.url, 'legit/app', 'v1', { layers: [{ seed: 1, sizeBytes: 4 * MiB }], mediaTypes: 'oci' });
    const big = randomBytes(64 * MiB);
    const bigDigest = fake.addBlob('big/x', big);
    const bigUrl = (_sd: StevedoreProcess) => `/v2/${fake.host}/big/x/blobs/${bigDigest}`;

    rows.push(
      await scenario('300 clients never read a cached 64 MiB blob', fake, registry.url, img, {}, async (sd) => {
        await fetchAll(`${sd.url}${bigUrl(sd)}`);
        const socks = await idleSockets(sd, 300, `GET ${bigUrl(sd)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        await sleep(3_000);
        return {
          stop: async () => {
            for (const s of socks) s.destroy();
          },
        };
      }),
    );

    rows.push(
      await scenario('50 clients never read a 64 MiB miss', fake, registry.url, img, {}, async (sd) => {
        const socks = await idleSockets(sd, 50, `GET ${bigUrl(sd)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        await waitFor(
          'the fill',
          async () => existsSync(path.join(sd.dataDir, 'blobs', 'sha256', bigDigest.slice(7, 9), bigDigest.slice(7))) || undefined,
          60_000,
          100,
        );
        return {
          stop: async () => {
            for (const s of socks) s.destroy();
          },
        };
      }),
    );

    const slowDigests = Array.from({ length: 40 }, () => {
      const d = fake.addBlob('slow/x', randomBytes(16 * MiB));
      fake.setFault(d, { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 50 });
      return d;
    });
    fake.addManifest(
      'slow/x',
      'v1',
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(Buffer.from('c')), size: 1 },
          layers: [],
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
    rows.push(
      await scenario('40 slow 16 MiB misses, clients gone after 1 s', fake, registry.url, img, { config: { fills: { idleGrace: 2 } } }, async (sd) => {
        const acs = slowDigests.map(() => new AbortController());
        slowDigests.forEach(
          (d, i) =>
            void request(`${sd.url}/v2/${fake.host}/slow/x/blobs/${d}`, { signal: acs[i]!.signal }).then(
              (r) => r.body.resume(),
              () => undefined,
            ),
        );
        await sleep(1_000);
        for (const a of acs) a.abort();
        const t = performance.now();
        const m = await fetchAll(`${sd.url}/v2/${fake.host}/slow/x/manifests/v1`, { accept: 'application/vnd.oci.image.manifest.v1+json' });
        const manifestMs = performance.now() - t;
        await sleep(4_000);
        const metrics = (await fetchAll(`${sd.url}/metrics`)).body.toString();
        const inFlight = /^stevedore_fills_in_flight (\d+)/m.exec(metrics)?.[1];
        return {
          stop: async () => undefined,
          note: async () =>
            `manifest from the same upstream ${m.status} in ${manifestMs.toFixed(0)} ms; fills in flight 5 s later: ${inFlight} (of ${slowDigests.length * 16} MiB)`,
        };
      }),
    );

    if (process.getuid?.() === 0) {
      const mnt = makeTempDir('stevedore-stress-tmpfs-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mnt.path]);
      try {
        rows.push(
          await scenario(
            '64 MiB miss on a 20 MiB disk, --max-size 15MB',
            fake,
            registry.url,
            img,
            { dataDir: path.join(mnt.path, 'd'), extraArgs: ['--max-size', '15MB'] },
            async (sd) => {
              await fetchAll(`${sd.url}${bigUrl(sd)}`).catch(() => undefined);
              await sleep(1_000);
              const again = await fetchAll(`${sd.url}${bigUrl(sd)}`);
              const partial = readdirSync(path.join(sd.dataDir, 'partial'))
                .filter((f) => !f.endsWith('.lock'))
                .reduce((n, f) => n + statSync(path.join(sd.dataDir, 'partial', f)).size, 0);
              const ready = JSON.parse((await fetchAll(`${sd.url}/readyz`)).body.toString()) as { cacheWritable: boolean };
              return {
                stop: async () => undefined,
                note: async () =>
                  `partial/ ${mib(partial)}; readyz cacheWritable ${ready.cacheWritable}; second GET ${again.cache} ${sha(again.body) === bigDigest ? 'verified' : 'WRONG'}`,
              };
            },
          ),
        );
      } finally {
        execFileSync('umount', [mnt.path]);
        await mnt.cleanup();
      }
    }

    rows.push(
      await scenario(
        'slowloris: 1,100 half-open connections, fd limit 1,024',
        fake,
        registry.url,
        img,
        { wrap: ['prlimit', '--nofile=1024:1024'], config: { server: { headersTimeout: 60_000, requestTimeout: 60_000 } } },
        async (sd) => {
          const socks: Socket[] = [];
          for (let i = 0; i < 11; i++) socks.push(...(await idleSockets(sd, 100, 'GET /v2/ HTTP/1.1\r\nHost: a\r\n')));
          return {
            stop: async () => {
              for (const s of socks) s.destroy();
            },
          };
        },
      ),
    );

    rows.push(
      await scenario(
        'a flipped byte in a cached 64 MiB blob, scrub every 2 s',
        fake,
        registry.url,
        img,
        { config: { scrub: { every: '2s', rate: '500MB/s' } } },
        async (sd) => {
          await fetchAll(`${sd.url}${bigUrl(sd)}`);
          const file = path.join(sd.dataDir, 'blobs', 'sha256', bigDigest.slice(7, 9), bigDigest.slice(7));
          await waitFor('commit', async () => existsSync(file) || undefined, 10_000, 50);
          const fd = openSync(file, 'r+');
          const b = Buffer.alloc(1);
          readSync(fd, b, 0, 1, 1000);
          b[0] = b[0]! ^ 0xff;
          writeSync(fd, b, 0, 1, 1000);
          closeSync(fd);
          const t = performance.now();
          await waitFor('the scrub', async () => !existsSync(file) || undefined, 30_000, 50);
          const ms = performance.now() - t;
          const again = await fetchAll(`${sd.url}${bigUrl(sd)}`);
          return {
            stop: async () => undefined,
            note: async () => `removed by the scrub after ${ms.toFixed(0)} ms; next GET ${again.cache} ${sha(again.body) === bigDigest ? 'verified' : 'WRONG'}`,
          };
        },
      ),
    );
  } finally {
    await fake.stop();
    await registry.destroy();
  }
  const out = (l: string): void => void process.stdout.write(`${l}\n`);
  out('');
  out('| scenario | RSS at start | peak RSS | RSS 3 s after | upstream bytes (fake) | legitimate pull during | errors | every byte verified | notes |');
  out('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    out(
      `| ${r.scenario} | ${mib(r.startRss)} | ${mib(r.peakRss)} | ${mib(r.afterRss)} | ${r.upstreamBytes} | ${r.pullMs === undefined ? '-' : `${r.pullMs.toFixed(0)} ms`} | ${r.errors} | ${r.verified ? 'yes' : 'NO'} | ${r.note} |`,
    );
  process.exit(rows.every((r) => r.errors === 0 && r.verified) ? 0 : 1);
}

await main();
