// Runs the built stevedore (dist/main.js) as a child process on 127.0.0.1, or in-process via buildApp().
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { Agent, request } from 'undici';
import { stringify } from 'yaml';
import { buildApp, type Stevedore } from '../../src/app.ts';
import { MALLOC_ENV, NODE_FLAGS } from '../../src/cli/serve.ts';
import { loadConfig, type ConfigFlags } from '../../src/config/load.ts';
import { createLogger } from '../../src/obs/log.ts';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor } from './tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

export interface StevedoreProcess {
  /** http://, or https:// when started with tlsCa */
  url: string;
  /** the node process (or its wrapper, e.g. prlimit, which execs node: the same PID) */
  pid: number;
  host: string;
  port: number;
  dataDir: string;
  logs(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
  /** Sends a signal; resolves with the exit code (null if killed by a signal) once the process has exited. */
  signal(sig: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  upstreams?: string[];
  tagTtl?: number;
  dataDir?: string;
  config?: Record<string, unknown>;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** The server serves TLS (--tls-cert/--tls-key in extraArgs or config): trust this CA (PEM) for the readiness probe. */
  tlsCa?: string;
  /** `--workers N`; default 1 (tests that rely on one process's state); set it to test the cluster. */
  workers?: number;
  /** A command line that runs node, e.g. ['prlimit', '--nofile=256:256'] */
  wrap?: string[];
}

/**
 * A node tier's config (issue 14's chain): the site tier, or a load balancer over its replicas, asked first as a
 * mirror of `origin` (with ?ns=), then the origin itself; a small breaker so a dead mirror is skipped quickly.
 */
export function nodeTierConfig(origin: { host: string; url: string }, mirrorUrl: string): Record<string, unknown> {
  return {
    builtinUpstreams: false,
    defaultUpstream: origin.host,
    retries: 1,
    circuitBreaker: { failures: 2, cooldown: 300 },
    upstreams: { [origin.host]: { endpoints: [{ url: mirrorUrl, mirror: true }, { url: origin.url }] } },
  };
}

/** Starts `node dist/main.js serve` (run `npm run build` first; `npm test` does). */
export async function startStevedore(opts: StartOptions = {}): Promise<StevedoreProcess> {
  const port = await freePort();
  const dataDir = opts.dataDir ?? (await makeTempDir('stevedore-data-')).path;
  const args = [MAIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--log-level', 'info'];
  for (const u of opts.upstreams ?? []) args.push('--upstream', u);
  if (opts.tagTtl !== undefined) args.push('--tag-ttl', String(opts.tagTtl));
  if (opts.config) {
    const file = path.join((await makeTempDir('stevedore-cfg-')).path, 'config.yaml');
    writeFileSync(file, stringify(opts.config));
    args.push('--config', file);
  }
  args.push(...(opts.extraArgs ?? []));
  if (!args.includes('--workers')) args.push('--workers', String(opts.workers ?? 1));
  // Launched as `npm start`, the Dockerfile and the systemd unit launch it: their node flags and malloc setting.
  const [cmd, ...pre] = [...(opts.wrap ?? []), process.execPath, ...NODE_FLAGS];
  const child = spawnTracked(cmd!, [...pre, ...args], { env: { ...process.env, ...MALLOC_ENV, ...opts.env } });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `${opts.tlsCa ? 'https' : 'http'}://127.0.0.1:${port}`;
  const dispatcher = opts.tlsCa ? new Agent({ connect: { ca: opts.tlsCa } }) : undefined;
  await waitFor(
    'stevedore /healthz',
    async () => {
      if (child.exitCode !== null) throw new Error(`stevedore exited ${child.exitCode}: ${output}`);
      try {
        const res = await request(`${url}/healthz`, dispatcher ? { dispatcher } : {});
        await res.body.dump();
        return res.statusCode === 200 || undefined;
      } catch {
        return undefined;
      }
    },
    15_000,
  );
  await dispatcher?.close();
  return {
    url,
    pid: child.pid!,
    host: `127.0.0.1:${port}`,
    port,
    dataDir,
    logs: () => output,
    stop: () => stopProcess(child),
    signal: (sig) =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill(sig);
      }),
    kill9: async () => {
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
    },
  };
}

export interface InProcess extends Stevedore {
  url: string;
  stop(): Promise<void>;
}

/** Builds the app in this process (injectable clock) and serves it on a free loopback port. */
export async function startInProcess(
  allFlags: ConfigFlags & { configObject?: Record<string, unknown> /** STEVEDORE_* variables, as loadConfig's env */; env?: NodeJS.ProcessEnv },
  now?: () => number,
): Promise<InProcess> {
  const { env = {}, ...flags } = allFlags;
  const dataDir = flags.data ?? (await makeTempDir('stevedore-data-')).path;
  let configFile: string | undefined;
  if (flags.configObject) {
    configFile = path.join((await makeTempDir('stevedore-cfg-')).path, 'config.yaml');
    writeFileSync(configFile, stringify(flags.configObject));
  }
  const config = loadConfig({ ...flags, data: dataDir, listen: '127.0.0.1:0', ...(configFile ? { config: configFile } : {}) }, env);
  const s = buildApp(config, createLogger('silent'), now);
  const port = await freePort();
  const server = serve({ fetch: s.app.fetch, hostname: '127.0.0.1', port }) as Server;
  await new Promise<void>((r) => server.once('listening', () => r()));
  return {
    ...s,
    url: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await s.close();
    },
  };
}
