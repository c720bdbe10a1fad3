// `stevedore serve`: listen, and on SIGTERM/SIGINT stop accepting, let in-flight responses finish, close SQLite.
import { serve as listen } from '@hono/node-server';
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { buildApp } from '../app.js';
import type { Config } from '../config/load.js';
import { createLogger } from '../obs/log.js';

const GRACE_MS = 10_000;

export async function serve(config: Config): Promise<void> {
  const log = createLogger(config.logLevel);
  const s = buildApp(config, log);
  await s.start();
  const tls = config.tlsCert && config.tlsKey ? { cert: config.tlsCert, key: config.tlsKey } : undefined;
  const readTls = (t: { cert: string; key: string }) => ({ cert: readFileSync(t.cert), key: readFileSync(t.key) });
  const server = (
    tls
      ? listen({ fetch: s.app.fetch, hostname: config.host, port: config.port, createServer: createHttpsServer, serverOptions: readTls(tls) })
      : listen({ fetch: s.app.fetch, hostname: config.host, port: config.port })
  ) as Server;
  if (tls) {
    // Renewed certificates (cert-manager, certbot) take effect without a restart: new connections use them.
    process.on('SIGHUP', () => {
      try {
        (server as unknown as HttpsServer).setSecureContext(readTls(tls));
        log.info({ cert: tls.cert }, 'TLS certificate reloaded');
      } catch (e) {
        log.error({ err: (e as Error).message, cert: tls.cert }, 'TLS certificate reload failed; keeping the previous one');
      }
    });
  }
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // large blobs stream for a long time
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  log.info(
    {
      listen: `${tls ? 'https' : 'http'}://${config.host}:${config.port}`,
      data: config.data,
      defaultUpstream: config.defaultUpstream,
      upstreams: Object.keys(config.upstreams),
    },
    'stevedore listening',
  );
  if (!config.clientAuth) {
    const withCredentials = Object.values(config.upstreams)
      .filter((u) => u.credentials)
      .map((u) => u.name);
    if (withCredentials.length > 0)
      log.warn(
        { upstreams: withCredentials, listen: `${config.host}:${config.port}` },
        'no client authentication (auth:) is configured, yet these upstreams have credentials: anyone who can connect can pull what those credentials can read',
      );
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => server.closeAllConnections(), GRACE_MS);
    force.unref();
    server.close(() => {
      // In-flight fills finish (bounded by the grace period) so their bytes are not downloaded twice.
      const grace = new Promise((r) => setTimeout(r, GRACE_MS).unref());
      void Promise.race([s.close(), grace]).finally(() => {
        log.flush();
        process.exit(0);
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
