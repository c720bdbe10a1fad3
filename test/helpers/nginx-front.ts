// Runs the shipped deploy/nginx/stevedore.conf with the real nginx on 127.0.0.1 in front of a running stevedore.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { freePort, makeTempDir } from './tmp.ts';

const BINARY = process.env.STEVEDORE_NGINX_BIN ?? 'nginx';
export const SHIPPED_CONF = path.resolve(import.meta.dirname, '../../deploy/nginx/stevedore.conf');

export type Front = ServerProcess;

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
  return startServerProcess({
    what: 'nginx in front of stevedore',
    cmd: BINARY,
    args: ['-e', d('error.log'), '-p', tmp.path, '-c', d('nginx.conf')],
    url: `http://127.0.0.1:${port}`,
    probe: '/healthz',
    tmp,
    logFile: d('error.log'),
    timeoutMs: 10_000,
  });
}
