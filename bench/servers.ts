// Benchmark servers on 127.0.0.1: stevedore (dist/main.js, with its PID for RSS sampling) and a temp-config nginx.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MALLOC_ENV, NODE_FLAGS } from '../src/cli/serve.ts';
import { nginxConf, startNginxProcess } from '../test/helpers/nginx.ts';
import { startServerProcess, type ServerProcess } from '../test/helpers/server-process.ts';
import { freePort, makeTempDir, type TempDir } from '../test/helpers/tmp.ts';

const MAIN = process.env.STEVEDORE_BENCH_MAIN ?? path.resolve(import.meta.dirname, '../dist/main.js');

export type Server = ServerProcess;

/**
 * `node dist/main.js serve` on a free loopback port, spawned here (not via test/helpers/stevedore.ts) because
 * the RSS measurement needs the PID. dataDir: reuse a directory (warm restart); default: a fresh temp dir.
 */
export async function startStevedore(
  upstreamUrl: string,
  opts: { dataDir?: string; tagTtl?: number; workers?: number; config?: Record<string, unknown> } = {},
): Promise<Server & { dataDir: string; port: number }> {
  const port = await freePort();
  const tmp: TempDir | undefined = opts.dataDir ? undefined : makeTempDir('stevedore-bench-data-');
  const dataDir = opts.dataDir ?? tmp!.path;
  // As `npm start` runs it (package.json).
  const args = [...NODE_FLAGS, MAIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--upstream', upstreamUrl, '--log-level', 'warn'];
  if (opts.tagTtl !== undefined) args.push('--tag-ttl', String(opts.tagTtl));
  if (opts.workers !== undefined) args.push('--workers', String(opts.workers));
  if (opts.config) {
    const file = path.join(makeTempDir('stevedore-bench-cfg-').path, 'config.json');
    writeFileSync(file, JSON.stringify(opts.config));
    args.push('--config', file);
  }
  const server = await startServerProcess({
    what: 'stevedore /healthz',
    cmd: process.execPath,
    args,
    spawn: { env: { ...process.env, ...MALLOC_ENV } },
    url: `http://127.0.0.1:${port}`,
    probe: '/healthz',
    tmp,
  });
  return { ...server, port, dataDir };
}

/** nginx serving `root` with sendfile, everything (conf, pid, logs, temp paths) in a temp dir. */
export async function startNginx(root: string): Promise<Server> {
  const tmp = makeTempDir('stevedore-bench-nginx-');
  const port = await freePort();
  // A static file server (the disk-speed baseline).
  const nginx = nginxConf(tmp.path, {
    connections: 256,
    http: `  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location = /__ping { return 200 "ok"; }
  }`,
  });
  return startNginxProcess(nginx, { what: 'nginx', url: `http://127.0.0.1:${port}`, probe: '/__ping', tmp });
}

/** One line of /proc/<pid>/status in bytes (VmRSS, VmHWM), or undefined when the process is gone. */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system, all threads) the process has used so far, in ms; NaN when it is gone. */
export function procCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/**
 * Samples VmRSS every intervalMs in a worker thread (its own event loop: the bench's busy download loop cannot
 * delay the samples) until stop(); resolves with the peak and the number of samples taken.
 */
export function sampleRss(pid: number, intervalMs = 50): { stop(): Promise<{ peak: number; samples: number }> } {
  const shared = new SharedArrayBuffer(16);
  const flag = new Int32Array(shared, 0, 2); // [0]: stop flag, [1]: samples
  const code = `
    const { workerData } = require('node:worker_threads');
    const { readFileSync } = require('node:fs');
    const flag = new Int32Array(workerData.shared, 0, 2);
    const peak = new Float64Array(workerData.shared, 8, 1);
    while (Atomics.load(flag, 0) === 0) {
      try {
        const m = /^VmRSS:\\s+(\\d+) kB/m.exec(readFileSync('/proc/' + workerData.pid + '/status', 'utf8'));
        if (m) { const v = Number(m[1]) * 1024; if (v > peak[0]) peak[0] = v; Atomics.add(flag, 1, 1); }
      } catch {}
      Atomics.wait(flag, 0, 0, workerData.intervalMs);
    }`;
  const worker = new Worker(code, { eval: true, workerData: { shared, pid, intervalMs } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.once('error', () => undefined);
  return {
    async stop() {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2_000))]);
      await worker.terminate();
      return { peak: new Float64Array(shared, 8, 1)[0]!, samples: Atomics.load(flag, 1) };
    },
  };
}
