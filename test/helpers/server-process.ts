// Runs a server binary for a test or the bench: spawn it, keep its output, wait until a URL answers 200, and stop it
// (and remove its temp dir) when asked or when it never came up. The one shape behind nginx, the peer and stevedore.
import type { SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'undici';
import { spawnTracked, stopProcess, waitFor, type TempDir } from './tmp.ts';

export interface ServerProcess {
  url: string;
  pid: number;
  /** its stdout and stderr (at most ~1 MB), then the file named by `logFile` */
  logs(): string;
  /** stop the process (SIGTERM, then SIGKILL) and remove its temp dir */
  stop(): Promise<void>;
}

export interface ServerSpec {
  /** for the timeout message: "nginx", "stevedore /healthz" */
  what: string;
  cmd: string;
  args: string[];
  spawn?: SpawnOptions;
  /** http://127.0.0.1:port */
  url: string;
  /** the path that answers 200 once it is up */
  probe: string;
  /** removed on stop */
  tmp?: TempDir;
  /** a log the process writes itself (nginx's error.log) */
  logFile?: string;
  timeoutMs?: number;
}

/** true when `url` answers 200 within a second */
async function answers(url: string): Promise<boolean> {
  try {
    const res = await request(url, { headersTimeout: 1_000, bodyTimeout: 1_000 });
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

export async function startServerProcess(s: ServerSpec): Promise<ServerProcess> {
  const child = spawnTracked(s.cmd, s.args, s.spawn);
  let out = '';
  const add = (d: Buffer): void => {
    if (out.length < 1_000_000) out += d.toString('utf8');
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const logs = (): string => {
    if (!s.logFile) return out;
    try {
      return out + readFileSync(s.logFile, 'utf8');
    } catch {
      return out; // none yet
    }
  };
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await s.tmp?.cleanup();
  };
  try {
    await waitFor(
      s.what,
      async () => {
        if (child.exitCode !== null) throw new Error(`${s.what}: exited ${child.exitCode}: ${logs()}`);
        return answers(`${s.url}${s.probe}`);
      },
      s.timeoutMs ?? 15_000,
      50,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: s.url, pid: child.pid!, logs, stop };
}
