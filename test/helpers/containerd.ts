// Runs a private containerd daemon (own root/state/socket in a temp dir) and pulls through hosts.toml mirrors with ctr.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, runCommand, spawnTracked, stopProcess, waitFor, type RunResult } from './tmp.ts';

const CONTAINERD = process.env.STEVEDORE_CONTAINERD_BIN ?? 'containerd';
const CTR = process.env.STEVEDORE_CTR_BIN ?? 'ctr';
/** ctr namespace used for everything (keeps our content apart from anything else) */
export const NAMESPACE = 'stevedore-test';

export interface PullOptions {
  hostsDir: string;
  /** e.g. linux/amd64; default: ctr's default (the host platform) */
  platform?: string;
  allPlatforms?: boolean;
  /**
   * true (default): `ctr images pull` = fetch + unpack into a snapshot, which also checks every diff_id.
   * false: `ctr content fetch` (content store only, no snapshot).
   */
  unpack?: boolean;
  /** snapshotter for unpack; default 'native' (works without mount privileges) */
  snapshotter?: string;
  timeoutMs?: number;
  extraArgs?: string[];
}

export interface Containerd {
  /** unix socket path */
  address: string;
  dir: string;
  /** run `ctr --address SOCK --namespace NS ARGS` */
  ctr(args: string[], opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** pull REF through the hosts.toml in hostsDir; resolves with the ctr result (check .code) */
  pull(ref: string, opts: PullOptions): Promise<RunResult>;
  /** digests in the content store (`ctr content ls -q`) */
  contentDigests(): Promise<string[]>;
  /** remove all images and content (GC) so the next pull fetches everything again */
  clearContent(): Promise<void>;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Write DIR/<registryHost>/hosts.toml making mirrorUrl the first (and only) host for pull+resolve.
 * `server` is the real upstream: http://HOST for loopback hosts, registry-1.docker.io for docker.io, else https://HOST.
 * containerd sends `?ns=<registryHost>` to a mirror whose host differs from the server's.
 */
export function writeHostsToml(dir: string, registryHost: string, mirrorUrl: string, opts: { server?: string; capabilities?: string[] } = {}): string {
  const server =
    opts.server ??
    (registryHost === 'docker.io'
      ? 'https://registry-1.docker.io'
      : /^(127\.|localhost)/.test(registryHost)
        ? `http://${registryHost}`
        : `https://${registryHost}`);
  const caps = (opts.capabilities ?? ['pull', 'resolve']).map((c) => JSON.stringify(c)).join(', ');
  const hostDir = path.join(dir, registryHost);
  mkdirSync(hostDir, { recursive: true });
  const file = path.join(hostDir, 'hosts.toml');
  writeFileSync(file, `server = ${JSON.stringify(server)}\n\n[host.${JSON.stringify(mirrorUrl.replace(/\/+$/, ''))}]\n  capabilities = [${caps}]\n`);
  return file;
}

export async function startContainerd(opts: { startTimeoutMs?: number } = {}): Promise<Containerd> {
  const tmp = makeTempDir('stevedore-ctd-');
  const address = path.join(tmp.path, 'containerd.sock');
  const configPath = path.join(tmp.path, 'config.toml');
  writeFileSync(
    configPath,
    [
      'version = 2',
      `root = ${JSON.stringify(path.join(tmp.path, 'root'))}`,
      `state = ${JSON.stringify(path.join(tmp.path, 'state'))}`,
      // CRI wants networking/cgroups; the others either need privileges or are irrelevant for pulls.
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.btrfs"]',
      '',
      '[grpc]',
      `  address = ${JSON.stringify(address)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${address}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '  level = "info"',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${JSON.stringify(path.join(tmp.path, 'opt'))}`,
      '',
    ].join('\n'),
  );

  let logText = '';
  const child: ChildProcess = spawnTracked(CONTAINERD, ['--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (d: Buffer): void => {
    if (logText.length < 2_000_000) logText += d.toString('utf8');
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let spawnError: Error | undefined;
  child.once('error', (e) => (spawnError = e));

  const ctr = (args: string[], o: { timeoutMs?: number } = {}): Promise<RunResult> =>
    runCommand(CTR, ['--address', address, '--namespace', NAMESPACE, ...args], { timeoutMs: o.timeoutMs ?? 60_000 });

  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await tmp.cleanup();
  };

  try {
    await waitFor(
      'containerd to answer `ctr version`',
      async () => {
        if (spawnError) throw spawnError;
        if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode}:\n${logText}`);
        return (await ctr(['version'], { timeoutMs: 3_000 })).code === 0;
      },
      opts.startTimeoutMs ?? 20_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }

  const contentDigests = async (): Promise<string[]> => {
    const r = await ctr(['content', 'ls', '-q']);
    if (r.code !== 0) throw new Error(`ctr content ls failed: ${r.stderr}`);
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('sha256:'));
  };

  return {
    address,
    dir: tmp.path,
    ctr,
    pull: (ref, o) => {
      const args = (o.unpack ?? true) ? ['images', 'pull', '--snapshotter', o.snapshotter ?? 'native'] : ['content', 'fetch'];
      args.push('--hosts-dir', o.hostsDir);
      if (o.platform) args.push('--platform', o.platform);
      if (o.allPlatforms) args.push('--all-platforms');
      args.push(...(o.extraArgs ?? []), ref);
      return ctr(args, { timeoutMs: o.timeoutMs ?? 120_000 });
    },
    contentDigests,
    clearContent: async () => {
      const imgs = await ctr(['images', 'ls', '-q']);
      const names = imgs.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (names.length) await ctr(['images', 'rm', '--sync', ...names]);
      const left = await contentDigests();
      if (left.length) await ctr(['content', 'rm', ...left]);
    },
    logs: () => logText,
    stop,
  };
}
