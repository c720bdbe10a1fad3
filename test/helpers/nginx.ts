// Runs a real nginx (Debian's) on 127.0.0.1 as a static file host with its own temp config, pid, logs and access log.
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor } from './tmp.ts';

const BINARY = process.env.STEVEDORE_NGINX_BIN ?? 'nginx';

export interface NginxRequest {
  method: string;
  uri: string;
  status: number;
  /** The Authorization and Cookie headers nginx received ('-' when absent): proof nothing secret was sent. */
  authorization: string;
  cookie: string;
}

export interface Nginx {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** document root: put files here (paths under it are URL paths) */
  root: string;
  /** place a file at URL path `urlPath` (copied) */
  put(urlPath: string, file: string | Buffer): void;
  /** every request in the access log so far (written when a response completes), oldest first */
  requests(): NginxRequest[];
  /** requests whose URI contains `part` */
  count(part: string): number;
  start(): Promise<void>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/** `extra` is placed inside the server block (e.g. redirect locations); `{port}` in it is replaced. */
export async function startNginx(opts: { extra?: string; port?: number } = {}): Promise<Nginx> {
  const tmp = makeTempDir('stevedore-nginx-');
  const port = opts.port ?? (await freePort());
  const dir = tmp.path;
  const root = path.join(dir, 'www');
  for (const d of ['www', 'tmp', 'logs']) mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(root, '__ready'), 'ok');
  const accessLog = path.join(dir, 'logs', 'access.log');
  writeFileSync(accessLog, '');
  const t = (n: string) => path.join(dir, 'tmp', n);
  writeFileSync(
    path.join(dir, 'nginx.conf'),
    `
daemon off;
master_process off;
worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'logs', 'error.log')} warn;
events { worker_connections 128; }
http {
  log_format probe '$request_method $request_uri $status "$http_authorization" "$http_cookie"';
  access_log ${accessLog} probe;
  client_body_temp_path ${t('body')};
  proxy_temp_path ${t('proxy')};
  fastcgi_temp_path ${t('fastcgi')};
  uwsgi_temp_path ${t('uwsgi')};
  scgi_temp_path ${t('scgi')};
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location = /__ready { access_log off; }
    ${(opts.extra ?? '').replaceAll('{port}', String(port))}
  }
}
`,
  );
  let child: ChildProcess | undefined;
  let output = '';
  const url = `http://127.0.0.1:${port}`;
  const start = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) return;
    const proc = spawnTracked(BINARY, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'logs', 'error.log')]);
    child = proc;
    proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(
      `nginx on ${url}`,
      async () => {
        if (proc.exitCode !== null) throw new Error(`nginx exited ${proc.exitCode}: ${output}`);
        try {
          const res = await request(`${url}/__ready`, { headersTimeout: 1_000, bodyTimeout: 1_000 });
          await res.body.dump();
          return res.statusCode === 200;
        } catch {
          return false;
        }
      },
      10_000,
      50,
    );
  };
  const stop = async (): Promise<void> => {
    if (child) await stopProcess(child);
    child = undefined;
  };
  const requests = (): NginxRequest[] =>
    readFileSync(accessLog, 'utf8')
      .split('\n')
      .flatMap((line) => {
        const m = /^(\S+) (\S+) (\d+) "([^"]*)" "([^"]*)"$/.exec(line);
        return m ? [{ method: m[1]!, uri: m[2]!, status: Number(m[3]), authorization: m[4]!, cookie: m[5]! }] : [];
      });
  await start();
  return {
    url,
    port,
    root,
    put(urlPath, file) {
      const dest = path.join(root, urlPath);
      mkdirSync(path.dirname(dest), { recursive: true });
      if (Buffer.isBuffer(file)) writeFileSync(dest, file);
      else copyFileSync(file, dest);
    },
    requests,
    count: (part) => requests().filter((r) => r.uri.includes(part)).length,
    start,
    stop,
    destroy: async () => {
      await stop();
      await tmp.cleanup();
    },
  };
}
