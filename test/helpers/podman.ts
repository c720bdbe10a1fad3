// podman with its own --root/--runroot and storage.conf (overlay, zstd:chunked partial pulls enabled), for tests.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, runCommand, type RunResult, type TempDir } from './tmp.ts';

export interface Podman {
  dir: string;
  /** Runs podman with this instance's storage; never rejects on a non-zero exit. */
  run(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** run(), throwing with podman's stderr on a non-zero exit. */
  ok(args: string[], timeoutMs?: number): Promise<string>;
  destroy(): Promise<void>;
}

/** A podman whose images live in a temp dir; `partial` enables zstd:chunked partial pulls (containers-storage.conf). */
export function makePodman(opts: { partial?: boolean } = {}): Podman {
  const tmp: TempDir = makeTempDir('stevedore-podman-');
  const root = path.join(tmp.path, 'root');
  const runroot = path.join(tmp.path, 'run');
  const conf = path.join(tmp.path, 'storage.conf');
  writeFileSync(
    conf,
    [
      '[storage]',
      'driver = "overlay"',
      `runroot = "${runroot}"`,
      `graphroot = "${root}"`,
      '[storage.options]',
      `pull_options = {enable_partial_images = "${opts.partial ? 'true' : 'false'}", use_hard_links = "false", ostree_repos = ""}`,
      '',
    ].join('\n'),
  );
  const env = { ...process.env, CONTAINERS_STORAGE_CONF: conf };
  const run = (args: string[], timeoutMs = 120_000): Promise<RunResult> =>
    runCommand('podman', ['--root', root, '--runroot', runroot, '--storage-driver', 'overlay', ...args], { env, timeoutMs });
  return {
    dir: tmp.path,
    run,
    async ok(args, timeoutMs) {
      const r = await run(args, timeoutMs);
      if (r.code !== 0) throw new Error(`podman ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      return r.stdout;
    },
    async destroy() {
      await run(['image', 'unmount', '--all'], 30_000);
      await run(['rmi', '--all', '--force'], 60_000);
      await tmp.cleanup();
    },
  };
}
