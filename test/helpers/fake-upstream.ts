// A fault-injecting fake OCI registry (node:http on 127.0.0.1) that records every request it receives.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { makeTempDir } from './tmp.ts';

export type Fault =
  | { kind: 'wrong-bytes' }
  | { kind: 'cut'; afterBytes: number; times?: number }
  | { kind: 'status'; status: number; retryAfter?: number; times?: number; body?: string }
  | { kind: 'slow-headers'; ms: number }
  | { kind: 'slow-body'; bytesPerTick: number; tickMs: number }
  /** answer GET and HEAD with a redirect to `location` (e.g. another server: a CDN) */
  | { kind: 'redirect'; location: string; status?: number; times?: number }
  /** withhold the response (GET or HEAD) until releaseHeld() or stop(), at most 30 s; default times 1 */
  | { kind: 'hold'; times?: number };

/** Bearer token auth, as Docker Hub does it: 401 + challenge on /v2/, a token endpoint at /token. */
export interface AuthOptions {
  /** realm announced in the challenge; default `<this fake's url>/token` */
  realm?: string;
  service: string;
  /** when set, /token demands exactly these Basic credentials (else it answers 401) */
  username?: string;
  password?: string;
  /** expires_in of issued tokens, seconds; default 300 */
  expiresIn?: number;
}

/** How tags/list answers: page size (with a Link header to the next page) and order. */
export interface TagListing { pageSize?: number; order?: 'sorted' | 'insertion' }

export interface RecordedRequest { method: string; /** path including the query string */ path: string; headers: Record<string, string | string[] | undefined> }

export interface FakeUpstream {
  url: string;
  host: string;
  addBlob(repo: string, bytes: Buffer): string;
  /** serve a blob from a file (for big content); digest is computed by the caller */
  addBlobFile(repo: string, file: string, digest: string): void;
  /**
   * ref is a tag (also served by digest) or a digest; returns the digest. opts.digest stores (and announces in
   * Docker-Content-Digest) a digest that is NOT the bytes' sha256: a lying upstream.
   */
  addManifest(repo: string, ref: string, bytes: Buffer, mediaType: string, opts?: { digest?: string }): string;
  /** require bearer tokens on every /v2/ request from now on (undefined: back to anonymous) */
  requireAuth(opts: AuthOptions | undefined): void;
  setTagListing(listing: TagListing): void;
  /** lets every response withheld by a 'hold' fault go on; returns how many there were */
  releaseHeld(): number;
  /** body bytes written so far for requests whose path includes pathIncludes (HEADs count 0) */
  bytesSent(pathIncludes: string): number;
  /** key: a digest (applies whenever that content is served) or a path starting with '/' (query ignored) */
  setFault(key: string, fault: Fault): void;
  clearFault(key: string): void;
  clearFaults(): void;
  requests(): RecordedRequest[];
  /** method '*' matches any method */
  count(method: string, pathIncludes: string): number;
  reset(): void;
  stop(): Promise<void>;
}

type Blob = { bytes: Buffer } | { file: string; size: number };
interface Repo { blobs: Map<string, Blob>; manifests: Map<string, { bytes: Buffer; mediaType: string }>; tags: Map<string, string> }

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sizeOf = (b: Blob): number => ('bytes' in b ? b.bytes.length : b.size);

function ociError(res: ServerResponse, status: number, code: string, message: string): void {
  const body = Buffer.from(JSON.stringify({ errors: [{ code, message, detail: null }] }));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
}

/** Yield the bytes [start, end] of a blob in chunks. */
async function* chunksOf(b: Blob, start: number, end: number): AsyncGenerator<Buffer> {
  if (end < start) return;
  if ('bytes' in b) {
    for (let o = start; o <= end; o += 65_536) yield b.bytes.subarray(o, Math.min(o + 65_536, end + 1));
    return;
  }
  for await (const c of createReadStream(b.file, { start, end })) yield c as Buffer;
}

function write(res: ServerResponse, chunk: Buffer): Promise<void> {
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve(); };
    res.once('drain', done);
    res.once('close', done);
  });
}

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const tmp = makeTempDir('stevedore-fake-upstream-');
  const repos = new Map<string, Repo>();
  const faults = new Map<string, Fault & { left?: number }>();
  let recorded: RecordedRequest[] = [];
  const timers = new Map<NodeJS.Timeout, () => void>();
  /** setTimeout-based sleep that stop() cuts short, so injected delays never outlive the server */
  const wait = (ms: number): Promise<void> => new Promise((resolve) => {
    const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
    timers.set(t, resolve);
  });
  const held = new Set<() => void>();
  const hold = (): Promise<void> => new Promise((resolve) => {
    const release = (): void => {
      clearTimeout(t);
      timers.delete(t);
      held.delete(release);
      resolve();
    };
    const t = setTimeout(release, 30_000);
    timers.set(t, release);
    held.add(release);
  });
  const repo = (name: string): Repo => {
    let r = repos.get(name);
    if (!r) repos.set(name, (r = { blobs: new Map(), manifests: new Map(), tags: new Map() }));
    return r;
  };
  let auth: AuthOptions | undefined;
  const issued = new Set<string>();
  let listing: TagListing = {};
  const sentBytes = new Map<string, number>();
  const addManifest = (name: string, ref: string, bytes: Buffer, mediaType: string, opts?: { digest?: string }): string => {
    const d = opts?.digest ?? sha256(bytes);
    const r = repo(name);
    r.manifests.set(d, { bytes, mediaType });
    if (!ref.startsWith('sha256:')) r.tags.set(ref, d);
    return d;
  };

  /** Find the active fault for this request and consume one use of it. */
  const takeFault = (method: string, pathname: string, digest?: string, ref?: string): Fault | undefined => {
    for (const key of [pathname, digest, ref]) {
      const f = key === undefined ? undefined : faults.get(key);
      if (!f) continue;
      if (method === 'HEAD' && (f.kind === 'cut' || f.kind === 'wrong-bytes' || f.kind === 'slow-body')) continue; // body faults wait for a GET
      if (f.kind === 'cut' || f.kind === 'status' || f.kind === 'redirect' || f.kind === 'hold') {
        const times = f.left ?? f.times ?? (f.kind === 'cut' || f.kind === 'hold' ? 1 : Infinity);
        if (times <= 0) continue;
        f.left = times - 1;
      }
      return f;
    }
    return undefined;
  };

  async function send(req: IncomingMessage, res: ServerResponse, body: Blob, headers: Record<string, string>, fault: Fault | undefined): Promise<void> {
    const total = sizeOf(body);
    let start = 0;
    let end = total - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && headers['content-type'] === 'application/octet-stream') {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), total - 1) : total - 1;
      if (start >= total || end < start) {
        res.writeHead(416, { 'content-range': `bytes */${total}`, 'content-length': 0 });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${total}`;
    }
    if (fault?.kind === 'slow-headers') await wait(fault.ms);
    if (res.destroyed) return;
    res.writeHead(status, { ...headers, 'content-length': String(end - start + 1), 'accept-ranges': 'bytes' });
    if (req.method === 'HEAD') { res.end(); return; }
    const key = req.url ?? '/';
    const count = (n: number): void => void sentBytes.set(key, (sentBytes.get(key) ?? 0) + n);
    let sent = 0;
    for await (let chunk of chunksOf(body, start, end)) {
      if (res.destroyed) return;
      if (fault?.kind === 'wrong-bytes') chunk = Buffer.from(chunk.map((b) => b ^ 0xff));
      if (fault?.kind === 'cut' && sent + chunk.length >= fault.afterBytes) {
        await write(res, chunk.subarray(0, fault.afterBytes - sent));
        count(fault.afterBytes - sent);
        await wait(20); // let the partial bytes reach the client before the reset
        res.socket?.destroy();
        return;
      }
      if (fault?.kind === 'slow-body') {
        for (let o = 0; o < chunk.length && !res.destroyed; o += fault.bytesPerTick) {
          const part = chunk.subarray(o, o + fault.bytesPerTick);
          await write(res, part);
          count(part.length);
          await wait(fault.tickMs);
        }
      } else {
        await write(res, chunk);
        count(chunk.length);
      }
      sent += chunk.length;
    }
    res.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    recorded.push({ method, path: req.url ?? '/', headers: { ...req.headers } });
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    if (auth && p === '/token' && method === 'GET') return tokenEndpoint(req, res, auth);
    if (auth && p.startsWith('/v2')) {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      if (!bearer || !issued.has(bearer[1]!)) {
        const name = /^\/v2\/(.+)\/(?:manifests|blobs|tags)\//.exec(p)?.[1];
        const realm = auth.realm ?? `http://${host}/token`;
        const scope = name ? `,scope="repository:${name}:pull"` : '';
        res.setHeader('www-authenticate', `Bearer realm="${realm}",service="${auth.service}"${scope}`);
        return ociError(res, 401, 'UNAUTHORIZED', 'authentication required');
      }
    }
    if (p === '/v2/' || p === '/v2') {
      const f = takeFault(method, p);
      if (f?.kind === 'status') return void statusFault(res, f);
      return void send(req, res, { bytes: Buffer.from('{}') }, { 'content-type': 'application/json' }, f);
    }
    let m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(p);
    if (m && (method === 'GET' || method === 'HEAD')) {
      const [, name = '', kind, ref = ''] = m;
      const r = repos.get(name);
      const digest = kind === 'manifests' ? (ref.startsWith('sha256:') ? ref : r?.tags.get(ref)) : ref;
      let fault = takeFault(method, p, digest, ref);
      if (fault?.kind === 'hold') {
        await hold();
        fault = undefined;
      }
      if (fault?.kind === 'status') return void statusFault(res, fault);
      if (fault?.kind === 'redirect') {
        res.writeHead(fault.status ?? 302, { location: fault.location, 'content-length': 0 });
        return void res.end();
      }
      if (kind === 'manifests') {
        const mf = digest ? r?.manifests.get(digest) : undefined;
        if (!mf || !digest) return ociError(res, 404, 'MANIFEST_UNKNOWN', `manifest unknown: ${name}:${ref}`);
        return send(req, res, { bytes: mf.bytes }, { 'content-type': mf.mediaType, 'docker-content-digest': digest }, fault);
      }
      const blob = r?.blobs.get(ref);
      if (!blob) return ociError(res, 404, 'BLOB_UNKNOWN', `blob unknown: ${ref}`);
      return send(req, res, blob, { 'content-type': 'application/octet-stream', 'docker-content-digest': ref }, fault);
    }
    m = /^\/v2\/(.+)\/tags\/list$/.exec(p);
    if (m && method === 'GET') {
      const fault = takeFault(method, p);
      if (fault?.kind === 'status') return void statusFault(res, fault);
      const r = repos.get(m[1] ?? '');
      if (!r) return ociError(res, 404, 'NAME_UNKNOWN', `repository name not known: ${m[1]}`);
      let tags = [...r.tags.keys()];
      if (listing.order !== 'insertion') tags.sort();
      const last = url.searchParams.get('last');
      if (last !== null) tags = tags.slice(tags.indexOf(last) + 1);
      const n = Number(url.searchParams.get('n') ?? listing.pageSize ?? Infinity);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (tags.length > n) {
        tags = tags.slice(0, n);
        headers.link = `</v2/${m[1]}/tags/list?n=${n}&last=${encodeURIComponent(tags[tags.length - 1]!)}>; rel="next"`;
      }
      const body = Buffer.from(JSON.stringify({ name: m[1], tags }));
      return send(req, res, { bytes: body }, headers, fault);
    }
    // Minimal push API so images.ts push helpers work against the fake too.
    m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(p);
    if (m && method === 'POST') {
      res.writeHead(202, { location: `/v2/${m[1]}/blobs/uploads/${randomUUID()}`, 'content-length': 0 });
      return void res.end();
    }
    if (m && method === 'PUT') {
      const digest = url.searchParams.get('digest') ?? '';
      const file = path.join(tmp.path, `${randomUUID()}.blob`);
      const h = createHash('sha256');
      req.on('data', (c: Buffer) => h.update(c));
      await pipeline(req, createWriteStream(file));
      if (`sha256:${h.digest('hex')}` !== digest) return ociError(res, 400, 'DIGEST_INVALID', 'digest mismatch');
      repo(m[1] ?? '').blobs.set(digest, { file, size: statSync(file).size });
      res.writeHead(201, { location: `/v2/${m[1]}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': 0 });
      return void res.end();
    }
    m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(p);
    if (m && method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const d = addManifest(m[1] ?? '', m[2] ?? '', Buffer.concat(chunks), req.headers['content-type'] ?? 'application/json');
      res.writeHead(201, { location: `/v2/${m[1]}/manifests/${d}`, 'docker-content-digest': d, 'content-length': 0 });
      return void res.end();
    }
    ociError(res, 404, 'NOT_FOUND', `no route for ${method} ${p}`);
  }

  function statusFault(res: ServerResponse, f: Extract<Fault, { kind: 'status' }>): void {
    const body = Buffer.from(f.body ?? JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: `injected ${f.status}` }] }));
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length) };
    if (f.retryAfter !== undefined) headers['retry-after'] = String(f.retryAfter);
    res.writeHead(f.status, headers);
    res.end(body);
  }

  function tokenEndpoint(req: IncomingMessage, res: ServerResponse, a: AuthOptions): void {
    if (a.username !== undefined) {
      const want = `Basic ${Buffer.from(`${a.username}:${a.password ?? ''}`).toString('base64')}`;
      if (req.headers.authorization !== want) return ociError(res, 401, 'UNAUTHORIZED', 'bad credentials');
    }
    const token = randomUUID();
    issued.add(token);
    const body = Buffer.from(JSON.stringify({ token, expires_in: a.expiresIn ?? 300 }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) ociError(res, 500, 'UNKNOWN', String(err));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = `127.0.0.1:${port}`;

  return {
    url: `http://${host}`,
    host,
    addBlob: (name, bytes) => {
      const d = sha256(bytes);
      repo(name).blobs.set(d, { bytes });
      return d;
    },
    addBlobFile: (name, file, digest) => void repo(name).blobs.set(digest, { file, size: statSync(file).size }),
    addManifest,
    requireAuth: (opts) => {
      auth = opts;
      issued.clear();
    },
    releaseHeld: () => {
      const all = [...held];
      for (const release of all) release();
      return all.length;
    },
    setTagListing: (l) => void (listing = { ...l }),
    bytesSent: (inc) => [...sentBytes].reduce((n, [k, v]) => (k.includes(inc) ? n + v : n), 0),
    setFault: (key, fault) => void faults.set(key, { ...fault }),
    clearFault: (key) => void faults.delete(key),
    clearFaults: () => faults.clear(),
    requests: () => recorded.slice(),
    count: (method, inc) => recorded.filter((r) => (method === '*' || r.method === method) && r.path.includes(inc)).length,
    reset: () => { recorded = []; sentBytes.clear(); },
    stop: async () => {
      let timer: NodeJS.Timeout | undefined;
      const closed = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5_000);
        server.close(() => resolve());
      });
      server.closeAllConnections();
      for (const [t, resolve] of timers) { clearTimeout(t); resolve(); }
      timers.clear();
      await closed;
      clearTimeout(timer);
      await tmp.cleanup();
    },
  };
}
