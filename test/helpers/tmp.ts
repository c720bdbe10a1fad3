// Disposable test resources: temp dirs under os.tmpdir(), free loopback ports, bounded waits, tracked child processes.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const live = new Set<string>();

/** Remove every temp dir that is still registered (best effort, synchronous so it works in 'exit'). */
function removeAll(): void {
  for (const dir of live) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
  live.clear();
}
const children = new Set<ChildProcess>();

/** SIGKILL every tracked child that is still running (synchronous: safe inside 'exit'). */
function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* ignore */
      }
    }
  }
  children.clear();
}
process.on('exit', () => {
  killAll();
  removeAll();
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    removeAll();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

/** Create a fresh directory under os.tmpdir(); it is also removed at process exit if not cleaned up. */
export function makeTempDir(prefix = 'stevedore-test-'): TempDir {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  live.add(dir);
  return {
    path: dir,
    async cleanup(): Promise<void> {
      live.delete(dir);
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

/** Remove a directory created by makeTempDir (by path). */
export async function removeTempDir(dir: string): Promise<void> {
  live.delete(dir);
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Ask the kernel for a currently free port on 127.0.0.1 (listen on :0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('freePort: unexpected address'));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Sleep for ms milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Poll `check` until it returns a truthy value or `timeoutMs` elapses (then throws with `what`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 15_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr instanceof Error ? `: ${lastErr.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * The test helpers' own STEVEDORE_*_BIN variables (which binary to run) are read by this process only: children
 * never get them, since stevedore refuses STEVEDORE_* variables it does not know.
 */
function childEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^STEVEDORE_[A-Z]+_BIN$/.test(k)));
}

/** Spawn a child that is SIGKILLed at process exit unless stopped first. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts, env: childEnv(opts.env ?? process.env) });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.off('exit', onExit);
      resolve(exited(child));
    }, ms);
    const onExit = (): void => {
      clearTimeout(t);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** Stop a child by PID: SIGTERM, then SIGKILL after graceMs (default 5 s); resolves once it has exited. */
export async function stopProcess(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.pid === undefined || exited(child)) {
    children.delete(child);
    return;
  }
  try {
    process.kill(child.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  if (!(await waitExit(child, graceMs))) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await waitExit(child, 5_000);
  }
  children.delete(child);
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion with a hard timeout (SIGTERM then SIGKILL); never rejects on non-zero exit. */
export async function runCommand(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const child = spawnTracked(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void stopProcess(child, 2_000);
  }, timeoutMs);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (e) => {
      err.push(Buffer.from(String(e)));
      resolve(127);
    });
    child.once('close', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  clearTimeout(timer);
  const stderr = Buffer.concat(err).toString('utf8') + (timedOut ? `\n[timed out after ${timeoutMs} ms]` : '');
  return { code: timedOut && code === 0 ? 124 : code, stdout: Buffer.concat(out).toString('utf8'), stderr };
}
