// The server socket's limits: header, request and keep-alive timeouts, a stall timeout for a response that makes no
// progress, a connection cap that evicts the oldest idle connection (one without a request in progress), and the
// answer to a request the HTTP parser refuses.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Config } from '../config/load.js';
import { OciError } from '../oci/errors.js';
import type { Metrics } from '../obs/metrics.js';

export type ServerLimits = Config['server'];

/** Half the process's open-file limit (the rest is for blob files, SQLite and upstream sockets), 64 .. 16384. */
export function defaultMaxConnections(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m) return Math.max(64, Math.min(16_384, Math.floor(Number(m[1]) / 2)));
  } catch {
    // not Linux: a conservative default
  }
  return 1024;
}

/** Options for http.createServer: Node enforces the header and request timeouts itself. */
export function serverOptions(l: ServerLimits): ServerOptions {
  return {
    headersTimeout: l.headersTimeout,
    requestTimeout: l.requestTimeout,
    keepAliveTimeout: l.keepAliveTimeout,
    // How often Node checks the two timeouts above (default 30 s would let a slowloris hold sockets that long).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(l.headersTimeout / 4))),
  };
}

/** Requests in progress on one connection (pipelined ahead of their answers) before it is closed. */
const MAX_PIPELINED = 256;

interface Conn {
  /** Requests in progress on this socket (0: idle keep-alive, or headers not complete yet). */
  busy: number;
}

/**
 * Applies the stall timeout and the connection cap. At the cap a new connection evicts the connection that has
 * been idle longest (a slowloris socket that never completes its headers is idle from its first byte), so a
 * legitimate client is served during the attack; only when every connection has a request in progress is the
 * new one refused.
 */
export function limitConnections(server: Server, l: ServerLimits, log: Logger, metrics?: Metrics): { open(): number } {
  const max = l.maxConnections ?? defaultMaxConnections();
  // Insertion order is idle order: a socket is moved to the end when it becomes idle.
  const conns = new Map<Socket, Conn>();
  let lastWarn = 0;
  const warn = (msg: string, fields: Record<string, number> = { maxConnections: max }): void => {
    const now = Date.now();
    if (now - lastWarn < 10_000) return;
    lastWarn = now;
    log.warn(fields, msg);
  };
  // A response that makes no progress (client not reading, nothing to send) for this long is cut.
  server.timeout = l.stallTimeout;
  // Under TLS, requests and timeouts see the TLSSocket; 'connection' saw the TCP socket it wraps (_parent).
  const raw = (sock: Socket): Socket => (conns.has(sock) ? sock : ((sock as Socket & { _parent?: Socket })._parent ?? sock));
  server.on('timeout', (sock: Socket) => {
    if ((conns.get(raw(sock))?.busy ?? 0) > 0) metrics?.connectionsClosed.inc({ reason: 'stalled' });
    sock.destroy();
  });
  server.on('connection', (sock: Socket) => {
    metrics?.connectionsAccepted.inc();
    conns.set(sock, { busy: 0 });
    sock.once('close', () => {
      conns.delete(sock);
      metrics?.connectionsOpen.set(conns.size);
    });
    if (conns.size > max) {
      let victim: Socket | undefined;
      for (const [s, c] of conns) {
        if (c.busy === 0 && s !== sock) {
          victim = s;
          break;
        }
      }
      if (victim) {
        conns.delete(victim);
        victim.destroy();
        metrics?.connectionsClosed.inc({ reason: 'evicted' });
        warn('connection cap reached: closing the longest idle connections');
      } else {
        conns.delete(sock);
        sock.destroy();
        metrics?.connectionsClosed.inc({ reason: 'refused' });
        warn('connection cap reached and every connection is busy: refusing new connections');
      }
    }
    metrics?.connectionsOpen.set(conns.size);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const sock = raw(req.socket);
    const c = conns.get(sock);
    if (!c) return;
    c.busy++;
    // Container clients never pipeline this deep: one that keeps sending requests without reading the answers would
    // have Node parse and queue every one of them (3.4 GB for 50 such connections). Cut it off.
    if (c.busy > MAX_PIPELINED) {
      // The rest of the chunk being parsed still arrives here once the socket is gone: counted once.
      if (!sock.destroyed) {
        metrics?.connectionsClosed.inc({ reason: 'pipelined' });
        warn('a client pipelined too many requests without reading the answers: closing its connection', { maxPipelined: MAX_PIPELINED });
        sock.destroy();
      }
      return;
    }
    res.once('close', () => {
      c.busy--;
      if (c.busy === 0 && conns.has(sock)) {
        conns.delete(sock);
        conns.set(sock, c);
      }
    });
  });
  return { open: () => conns.size };
}

/** Status and message for what Node's parser refuses, by its error code (anything else: a malformed request, 400). */
const PARSE_ERRORS: Record<string, [status: number, message: string]> = {
  HPE_HEADER_OVERFLOW: [431, 'request headers too large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'chunk extensions too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request not received in time'],
};

/**
 * A request Node's HTTP parser refuses before any route runs (headers too large, a malformed request line, an
 * unknown method, too slow) is answered as every other error is: a status and an OCI error body, then closed;
 * so is a CONNECT (405).
 */
export function answerParseErrors(server: Server): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }) => {
    // Gone already, or a response under way on this socket: nothing can be said any more.
    if (err.code === 'ECONNRESET' || !socket.writable || (socket.bytesWritten ?? 0) > 0) return void socket.destroy();
    const [status, message] = PARSE_ERRORS[err.code ?? ''] ?? [400, 'malformed HTTP request'];
    answerRaw(socket, status, message, err.code ?? err.message);
  });
  // CONNECT asks for a tunnel: this is a registry mirror, not a forward proxy.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) => answerRaw(socket, 405, 'Method Not Allowed', 'CONNECT: not a forward proxy'));
}

/** An OCI error answer written on the bare socket, then closed (a client that does not read it does not keep it). */
function answerRaw(socket: Duplex, status: number, message: string, reason: string): void {
  const body = JSON.stringify(new OciError('UNSUPPORTED', { reason }, message).toBody());
  socket.end(
    `HTTP/1.1 ${status} ${message}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
  setTimeout(() => socket.destroy(), 1_000).unref();
}
