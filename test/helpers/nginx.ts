// Runs a real nginx (Debian's) on 127.0.0.1 as a static file host with its own temp config, pid, logs and access log;
// and writes the process-level part of every nginx.conf the tests and the bench run (nginxConf).
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startServerProcess, type ServerProcess } from './server-process.ts';
import { freePort, makeTempDir, type TempDir } from './tmp.ts';

const NGINX_BINARY = process.env.STEVEDORE_NGINX_BIN ?? 'nginx';

/**
 * One nginx process run as the invoking user with everything under `dir`: writes `dir/nginx.conf` (pid, error log,
 * temp paths, then `http`: the rest of the http block) and its directories; returns nginx's command line.
 */
export function nginxConf(dir: string, o: { connections: number; http: string }): { args: string[]; errorLog: string } {
  const p = (...parts: string[]): string => path.join(dir, ...parts);
  for (const sub of ['logs', 'tmp/body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(p(sub), { recursive: true });
  const errorLog = p('logs', 'error.log');
  writeFileSync(
    p('nginx.conf'),
    `daemon off;
master_process off;
worker_processes 1;
pid ${p('nginx.pid')};
error_log ${errorLog} warn;
events { worker_connections ${o.connections}; }
http {
  client_body_temp_path ${p('tmp', 'body')};
  proxy_temp_path ${p('tmp', 'proxy')};
  fastcgi_temp_path ${p('tmp', 'fastcgi')};
  uwsgi_temp_path ${p('tmp', 'uwsgi')};
  scgi_temp_path ${p('tmp', 'scgi')};
${o.http}
}
`,
  );
  // -e: the early error log, so nginx never touches /var/log/nginx; -p: prefix for relative paths.
  return { args: ['-e', errorLog, '-p', dir, '-c', p('nginx.conf')], errorLog };
}

/** Runs the nginx that nginxConf wrote (its error log read as the process log) until `url` + `probe` answers 200. */
export function startNginxProcess(
  conf: { args: string[]; errorLog: string },
  o: { what: string; url: string; probe: string; tmp?: TempDir },
): Promise<ServerProcess> {
  return startServerProcess({ ...o, cmd: NGINX_BINARY, args: conf.args, logFile: conf.errorLog, timeoutMs: 10_000 });
}

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
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, '__ready'), 'ok');
  const accessLog = path.join(dir, 'logs', 'access.log');
  const nginx = nginxConf(dir, {
    connections: 128,
    http: `  log_format probe '$request_method $request_uri $status "$http_authorization" "$http_cookie"';
  access_log ${accessLog} probe;
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location = /__ready { access_log off; }
    ${(opts.extra ?? '').replaceAll('{port}', String(port))}
  }`,
  });
  writeFileSync(accessLog, '');
  const url = `http://127.0.0.1:${port}`;
  let server: ServerProcess | undefined;
  const start = async (): Promise<void> => {
    if (server) return;
    server = await startNginxProcess(nginx, { what: `nginx on ${url}`, url, probe: '/__ready' });
  };
  const stop = async (): Promise<void> => {
    await server?.stop();
    server = undefined;
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
