// Runs the shipped deploy/nginx/stevedore.conf with the real nginx on 127.0.0.1 in front of a running stevedore.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { nginxConf, startNginxProcess } from './nginx.ts';
import type { ServerProcess } from './server-process.ts';
import { freePort, makeTempDir } from './tmp.ts';

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
  const site = path.join(tmp.path, 'site.conf');
  writeFileSync(site, renderFrontConf(readFileSync(SHIPPED_CONF, 'utf8'), { listen: `127.0.0.1:${port}`, stevedore, blobsDir: path.join(dataDir, 'blobs') }));
  const nginx = nginxConf(tmp.path, {
    connections: 512,
    http: `  access_log off;
  include ${site};`,
  });
  return startNginxProcess(nginx, { what: 'nginx in front of stevedore', url: `http://127.0.0.1:${port}`, probe: '/healthz', tmp });
}
