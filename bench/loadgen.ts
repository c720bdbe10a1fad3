// Closed-loop HTTP/1.1 keep-alive load generator on raw sockets, for small GET/HEAD responses (req/s and latency).
//
// Why not undici: it closes the connection after every HEAD (undici#258, "interop with misbehaving servers"),
// so a HEAD benchmark through it measures TCP handshakes, not the server. Real registry clients (containerd,
// Docker, skopeo: Go net/http) keep HEAD connections alive. This client is tiny and identical for GET and HEAD.
import net from 'node:net';

export interface LoadResult {
  requests: number;
  /** network errors, unparseable answers, timeouts */
  errors: number;
  /** answers whose status was not the expected one */
  non2xx: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
  connections: number;
  /** the connection was re-opened this many times (server said close, or an error) */
  reconnects: number;
}

const MAX_SAMPLES = 2_000_000;
const CRLFCRLF = Buffer.from('\r\n\r\n');

/** One keep-alive connection answering one request at a time; responses must carry Content-Length. */
class Conn {
  private socket: net.Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private pending: { head: boolean; resolve: (status: number) => void; reject: (e: Error) => void } | undefined;
  reconnects = -1;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  private open(): net.Socket {
    this.reconnects++;
    const s = net.connect({ host: this.host, port: this.port, noDelay: true });
    s.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.parse();
    });
    const fail = (e: Error): void => {
      if (this.socket === s) this.socket = undefined;
      this.buf = Buffer.alloc(0);
      const p = this.pending;
      this.pending = undefined;
      p?.reject(e);
    };
    s.on('error', fail);
    s.on('close', () => fail(new Error('connection closed')));
    return s;
  }

  private parse(): void {
    const p = this.pending;
    if (!p) return;
    const end = this.buf.indexOf(CRLFCRLF);
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (/\r\ntransfer-encoding:/i.test(head) || (!cl && !p.head)) {
      this.socket?.destroy(new Error('loadgen: only Content-Length responses are supported'));
      return;
    }
    const bodyLen = p.head ? 0 : Number(cl![1]);
    const total = end + 4 + bodyLen;
    if (this.buf.length < total) return;
    this.buf = this.buf.subarray(total);
    if (/\r\nconnection:\s*close/i.test(head)) {
      const s = this.socket;
      this.socket = undefined;
      s?.removeAllListeners('close');
      s?.destroy();
    }
    this.pending = undefined;
    p.resolve(status);
  }

  request(bytes: Buffer, head: boolean, timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => this.socket?.destroy(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
      this.pending = {
        head,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket ??= this.open();
      this.socket.write(bytes);
    });
  }

  close(): void {
    this.pending = undefined;
    this.socket?.removeAllListeners('close');
    this.socket?.destroy();
    this.socket = undefined;
  }
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/**
 * `connections` keep-alive connections, each sends one request, reads the answer, repeats until durationMs
 * has passed (closed loop, so latency includes queueing behind the other connections). A warm-up (not
 * counted) opens the connections and lets the server's JIT settle. Bounded by time and MAX_SAMPLES.
 */
export async function loadTest(
  origin: string,
  path: string,
  opts: {
    method: 'GET' | 'HEAD';
    headers?: Record<string, string>;
    connections?: number;
    durationMs?: number;
    warmupMs?: number;
    expectStatus?: number;
    timeoutMs?: number;
  },
): Promise<LoadResult> {
  const u = new URL(origin);
  const connections = opts.connections ?? 64;
  const expect = opts.expectStatus ?? 200;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const head = opts.method === 'HEAD';
  const lines = [`${opts.method} ${path} HTTP/1.1`, `host: ${u.host}`, 'connection: keep-alive'];
  for (const [k, v] of Object.entries(opts.headers ?? {})) lines.push(`${k}: ${v}`);
  const bytes = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  const conns = Array.from({ length: connections }, () => new Conn(u.hostname, Number(u.port)));
  const lat = new Float64Array(MAX_SAMPLES);
  let n = 0;
  let errors = 0;
  let non2xx = 0;
  let firstError: unknown;
  const run = async (ms: number, record: boolean): Promise<number> => {
    const start = performance.now();
    const deadline = start + ms;
    await Promise.all(
      conns.map(async (c) => {
        while (performance.now() < deadline && n < MAX_SAMPLES) {
          const t = performance.now();
          try {
            const status = await c.request(bytes, head, timeoutMs);
            if (!record) continue;
            if (status !== expect) non2xx++;
            lat[n++] = performance.now() - t;
          } catch (e) {
            if (!record) continue;
            errors++;
            firstError ??= e;
          }
        }
      }),
    );
    return (performance.now() - start) / 1000;
  };
  try {
    await run(opts.warmupMs ?? 1_000, false);
    const reconnectsBefore = conns.reduce((a, c) => a + c.reconnects, 0);
    const seconds = await run(opts.durationMs ?? 5_000, true);
    if (n === 0) throw new Error(`${opts.method} ${origin}${path}: no request succeeded: ${String(firstError)}`);
    const sorted = lat.slice(0, n).sort();
    return {
      requests: n + errors,
      errors,
      non2xx,
      seconds,
      rps: n / seconds,
      p50ms: percentile(sorted, 50),
      p99ms: percentile(sorted, 99),
      maxms: sorted[sorted.length - 1]!,
      connections,
      reconnects: conns.reduce((a, c) => a + c.reconnects, 0) - reconnectsBefore,
    };
  } finally {
    for (const c of conns) c.close();
  }
}
