// Runs the shipped deploy/nginx/stevedore.conf with the real nginx on 127.0.0.1 in front of a running stevedore.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor } from './tmp.ts';

const BINARY = process.env.STEVEDORE_NGINX_BIN ?? 'nginx';
export const SHIPPED_CONF = path.resolve(import.meta.dirname, '../../deploy/nginx/stevedore.conf');

export interface Front {
  url: string;
  pid: number;
  /** nginx's error log and output */
  logs(): string;
  stop(): Promise<void>;
}

/** The shipped server config with its three marked values replaced; throws if a marker is missing. */
export function renderFrontConf(text: string, v: { listen: string; stevedore: string; blobsDir: string }): string {
  const swaps: [RegExp, string][] = [
    [/server 127\.0\.0\.1:5000;/, `server ${v.stevedore};`],
    [/alias \/var\/lib\/stevedore\/blobs\/;/, `alias ${v.blobsDir.replace(/\/?$/, '/')};`],
    [/listen 80;/, `listen ${v.listen};`],
  ];
  let out = text;
  for (const [re, to] of swaps) {
    if (!re.test(out)) throw new Error(`deploy/nginx/stevedore.conf: marker ${re} not found`);
    out = out.replace(re, to);
  }
  return out;
}

/** nginx (one process, as the invoking user) with the shipped config in front of stevedore at `stevedore` (host:port). */
export async function startFront(stevedore: string, dataDir: string): Promise<Front> {
  const tmp = makeTempDir('stevedore-front-');
  const port = await freePort();
  const d = (p: string): string => path.join(tmp.path, p);
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(d(sub));
  writeFileSync(
    d('site.conf'),
    renderFrontConf(readFileSync(SHIPPED_CONF, 'utf8'), { listen: `127.0.0.1:${port}`, stevedore, blobsDir: path.join(dataDir, 'blobs') }),
  );
  writeFileSync(
    d('nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
pid ${d('nginx.pid')};
error_log ${d('error.log')} warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path ${d('body')};
  proxy_temp_path ${d('proxy')};
  fastcgi_temp_path ${d('fastcgi')};
  uwsgi_temp_path ${d('uwsgi')};
  scgi_temp_path ${d('scgi')};
  include ${d('site.conf')};
}
`,
  );
  const child: ChildProcess = spawnTracked(BINARY, ['-e', d('error.log'), '-p', tmp.path, '-c', d('nginx.conf')]);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const logs = (): string => {
    let err = '';
    try {
      err = readFileSync(d('error.log'), 'utf8');
    } catch {
      /* none yet */
    }
    return out + err;
  };
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await tmp.cleanup();
  };
  try {
    await waitFor(
      'nginx in front of stevedore',
      async () => {
        if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}: ${logs()}`);
        const res = await request(`${url}/healthz`, { headersTimeout: 1_000, bodyTimeout: 1_000 }).catch(() => undefined);
        await res?.body.dump();
        return res?.statusCode === 200;
      },
      10_000,
      50,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, pid: child.pid!, logs, stop };
}
