// Starts and stops a real CNCF distribution registry (docker-registry 2.8) on loopback for tests.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import YAML from 'yaml';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor, type TempDir } from './tmp.ts';

export interface RegistryRequest {
  method: string;
  uri: string;
  status: number;
}

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT */
  host: string;
  /** temp dir holding config.yml and data/ (the storage root) */
  dir: string;
  stop(): Promise<void>;
  /** restart on the same port and storage after stop() */
  start(): Promise<void>;
  /** requests parsed from the registry's JSON access log ("response completed" lines), oldest first */
  requests(): RegistryRequest[];
  clearRequests(): void;
  /** wait (bounded) until a logged request matches; log lines are written just after the response, so poll */
  waitForRequest(pred: (r: RegistryRequest) => boolean, timeoutMs?: number): Promise<RegistryRequest>;
  /** everything the registry printed (for debugging failures) */
  logs(): string;
  /** stop() and remove the temp dir */
  destroy(): Promise<void>;
}

export interface StartRegistryOptions {
  /** accept manifests whose layers carry foreign `urls` (needed for pushForeignImage) */
  allowForeignUrls?: boolean;
  /** private registry: `auth: htpasswd` with these users (bcrypt entries written by `htpasswd -B`) */
  users?: Record<string, string>;
}

const BINARY = process.env.STEVEDORE_REGISTRY_BIN ?? 'docker-registry';

/** Build the registry config object (exported for tests that want to inspect it). */
export function registryConfig(dataDir: string, port: number, allowForeignUrls: boolean, htpasswdFile?: string): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'info', formatter: 'json', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: dataDir }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}`, secret: 'stevedore-test-secret' },
  };
  if (htpasswdFile) cfg.auth = { htpasswd: { realm: 'test-registry', path: htpasswdFile } };
  if (allowForeignUrls) cfg.validation = { manifests: { urls: { allow: ['^https?://'] } } };
  return cfg;
}

/** Parse one JSON log line into a request record, or undefined when it is not a "response completed" line. */
export function parseLogLine(line: string): RegistryRequest | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const method = obj['http.request.method'];
  const uri = obj['http.request.uri'];
  const status = obj['http.response.status'];
  if (typeof method !== 'string' || typeof uri !== 'string' || typeof status !== 'number') return undefined;
  return { method, uri, status };
}

/** `user:bcrypt` lines as `htpasswd -nbB` writes them (apache2-utils). */
export function htpasswdLines(users: Record<string, string>): string {
  return Object.entries(users)
    .map(([u, p]) => execFileSync('htpasswd', ['-nbB', '-C', '5', u, p], { encoding: 'utf8' }).trim())
    .join('\n')
    .concat('\n');
}

export const basicAuth = (user: string, pass: string): Record<string, string> => ({
  authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
});

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<Registry> {
  const tmp: TempDir = makeTempDir('stevedore-registry-');
  const dataDir = path.join(tmp.path, 'data');
  mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  const configPath = path.join(tmp.path, 'config.yml');
  let htpasswdFile: string | undefined;
  if (opts.users) {
    htpasswdFile = path.join(tmp.path, 'htpasswd');
    writeFileSync(htpasswdFile, htpasswdLines(opts.users));
  }
  writeFileSync(configPath, YAML.stringify(registryConfig(dataDir, port, opts.allowForeignUrls ?? false, htpasswdFile)));
  const probeAuth = opts.users ? basicAuth(...(Object.entries(opts.users)[0] as [string, string])) : {};

  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  let child: ChildProcess | undefined;
  let reqs: RegistryRequest[] = [];
  /** GET /v2/ lines ever logged (never cleared): start() waits for its own probe's line. */
  let probesLogged = 0;
  let logText = '';

  const attach = (stream: NodeJS.ReadableStream | null): void => {
    if (!stream) return;
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      if (logText.length < 4_000_000) logText += chunk;
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const r = parseLogLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        if (r) reqs.push(r);
        if (r?.method === 'GET' && r.uri === '/v2/') probesLogged++;
      }
    });
  };

  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawnTracked(BINARY, ['serve', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    attach(proc.stdout);
    attach(proc.stderr);
    let spawnError: Error | undefined;
    proc.once('error', (e) => (spawnError = e));
    const probesBefore = probesLogged;
    try {
      await waitFor(
        `registry on ${url}`,
        async () => {
          if (spawnError) throw spawnError;
          if (proc.exitCode !== null) throw new Error(`registry exited with ${proc.exitCode}:\n${logText}`);
          const res = await request(`${url}/v2/`, { headers: probeAuth, headersTimeout: 1_000, bodyTimeout: 1_000 });
          await res.body.dump();
          return res.statusCode === 200;
        },
        15_000,
        50,
      );
      // The registry logs a request just after answering it: wait for our own probe's line, so a test that
      // clears the log right after start() never sees it arrive late.
      await waitFor('the readiness probe in the registry log', () => probesLogged > probesBefore || undefined, 5_000, 10);
    } catch (err) {
      await stopProcess(proc);
      throw err;
    }
  };

  const stop = async (): Promise<void> => {
    if (child) await stopProcess(child);
    child = undefined;
  };

  await start();

  return {
    url,
    host,
    dir: tmp.path,
    start,
    stop,
    requests: () => reqs.slice(),
    clearRequests: () => {
      reqs = [];
    },
    waitForRequest: (pred, timeoutMs = 5_000) => waitFor('registry log line', () => reqs.find(pred), timeoutMs, 20),
    logs: () => logText,
    destroy: async () => {
      await stop();
      await tmp.cleanup();
    },
  };
}
