// Runs Debian's haproxy on 127.0.0.1 with a copy of deploy/haproxy/haproxy.cfg: only the bind port and server addresses swapped.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor } from './tmp.ts';

const BINARY = process.env.STEVEDORE_HAPROXY_BIN ?? 'haproxy';
export const SHIPPED_CFG = path.resolve(import.meta.dirname, '../../deploy/haproxy/haproxy.cfg');
const SERVER_ADDRESS = /stevedore-site-(\d+)\.stevedore-site\.stevedore\.svc\.cluster\.local:5000/g;

export interface HaproxyLogLine {
  server: string;
  method: string;
  uri: string;
  status: number;
}

export interface Haproxy {
  url: string;
  host: string;
  /** The config haproxy runs: the shipped one with addresses swapped. */
  config: string;
  /** Requests as logged (option httplog): which server (site-0, site-1, ...) answered what. */
  requests(): HaproxyLogLine[];
  logs(): string;
  stop(): Promise<void>;
}

/** The shipped config with `bind :5000` on 127.0.0.1:port and server N at replicas[N]; everything else as shipped. */
export function testConfig(port: number, replicas: string[]): string {
  const shipped = readFileSync(SHIPPED_CFG, 'utf8');
  const servers = [...shipped.matchAll(SERVER_ADDRESS)].map((m) => Number(m[1]));
  if (servers.length !== replicas.length) throw new Error(`the shipped haproxy.cfg has ${servers.length} servers, the test ${replicas.length} replicas`);
  const bind = /^(\s*bind) :5000$/m;
  if (!bind.test(shipped)) throw new Error('the shipped haproxy.cfg has no "bind :5000" line');
  return shipped.replace(bind, `$1 127.0.0.1:${port}`).replace(SERVER_ADDRESS, (_m, n: string) => replicas[Number(n)]!);
}

/** Starts haproxy in the foreground (-db) in front of `replicas` (host:port each, in server order). */
export async function startHaproxy(replicas: string[]): Promise<Haproxy> {
  const tmp = makeTempDir('stevedore-haproxy-');
  const port = await freePort();
  const config = testConfig(port, replicas);
  const file = path.join(tmp.path, 'haproxy.cfg');
  writeFileSync(file, config);
  const child = spawnTracked(BINARY, ['-db', '-f', file], { cwd: tmp.path });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'haproxy listening',
    async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${output}`);
      try {
        const res = await fetch(`${url}/v2/`);
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return undefined;
      }
    },
    15_000,
  );
  return {
    url,
    host: `127.0.0.1:${port}`,
    config,
    logs: () => output,
    requests: () =>
      output.split('\n').flatMap((l) => {
        // ... registry site/site-1 0/0/0/1/1 200 1234 - - ---- 1/1/0/0/0 0/0 "GET /v2/x/blobs/sha256:.. HTTP/1.1"
        const m = / site\/(\S+) \S+ (\d{3}) .*"([A-Z]+) (\S+) HTTP\/[\d.]+"$/.exec(l);
        return m ? [{ server: m[1]!, status: Number(m[2]), method: m[3]!, uri: m[4]! }] : [];
      }),
    async stop() {
      await stopProcess(child);
      await tmp.cleanup();
    },
  };
}
