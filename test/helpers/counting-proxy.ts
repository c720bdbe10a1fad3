// A tiny HTTP proxy on 127.0.0.1 in front of the registry that counts response body bytes per path (upstream bytes).
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  path: string;
  status: number;
  range?: string;
  /** The response's Content-Type. */
  contentType?: string;
  /** Response body bytes sent to the client (so far, for a response still streaming). */
  bytes: number;
}

export interface CountingProxy {
  /** http://127.0.0.1:PORT: point stevedore's upstream here. */
  url: string;
  requests(): ProxiedRequest[];
  /** Body bytes sent for paths containing `part` (all paths when omitted). */
  bytes(part?: string): number;
  reset(): void;
  stop(): Promise<void>;
}

/** Forwards every request to `target` (http://host:port) unchanged, streams the answer back and counts it. */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const to = new URL(target);
  let log: ProxiedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const entry: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      status: 0,
      bytes: 0,
      ...(req.headers.range ? { range: req.headers.range } : {}),
    };
    log.push(entry);
    const headers: IncomingHttpHeaders = { ...req.headers, host: to.host };
    const up = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, (ur) => {
      entry.status = ur.statusCode ?? 0;
      if (typeof ur.headers['content-type'] === 'string') entry.contentType = ur.headers['content-type'];
      // A Location pointing at the registry itself must keep going through the proxy.
      const h = { ...ur.headers };
      if (typeof h.location === 'string') h.location = h.location.replace(to.origin, `http://${req.headers.host}`);
      res.writeHead(ur.statusCode ?? 502, h);
      ur.on('data', (c: Buffer) => {
        entry.bytes += c.length;
        if (!res.write(c)) {
          ur.pause();
          res.once('drain', () => ur.resume());
        }
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
    });
    // The client went away (e.g. a killed prefetch): stop reading from the registry too.
    res.on('close', () => up.destroy());
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => log.slice(),
    bytes: (part) => log.filter((r) => part === undefined || r.path.includes(part)).reduce((a, r) => a + r.bytes, 0),
    reset: () => {
      log = [];
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
