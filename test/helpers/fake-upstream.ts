// A fault-injecting fake OCI registry (node:http on 127.0.0.1) that records every request it receives.
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FakeAuth, tagPage, type AuthOptions, type TagListing } from './fake-auth.ts';
import { ociError, send as sendBody, statusFault, type Blob, type Fault } from './fake-responses.ts';
import { makeTempDir } from './tmp.ts';

// Auth and tag paging live in fake-auth.ts, response writing and the Fault kinds in fake-responses.ts; importable from here too.
export type { AuthOptions, Fault, TagListing };

export interface RecordedRequest {
  method: string /** path including the query string */;
  path: string;
  headers: Record<string, string | string[] | undefined>;
}

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
  /**
   * Serve the referrers API for repo/digest with exactly these bytes (an image index). `filters`: the upstream
   * applies ?artifactType= itself (and says so in OCI-Filters-Applied); otherwise it ignores the filter.
   * `pageSize`: the list is paginated (?page=N, Link rel="next"). `pages`: these exact bodies are the pages, in order
   * (valid or not; `body` is then unused). Digests without a list get an empty index.
   */
  setReferrers(repo: string, digest: string, body: Buffer, opts?: { filters?: boolean; pageSize?: number; pages?: Buffer[] }): void;
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

interface Repo {
  blobs: Map<string, Blob>;
  manifests: Map<string, { bytes: Buffer; mediaType: string }>;
  tags: Map<string, string>;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function startFakeUpstream(): Promise<FakeUpstream> {
  const tmp = makeTempDir('stevedore-fake-upstream-');
  const repos = new Map<string, Repo>();
  const faults = new Map<string, Fault & { left?: number }>();
  let recorded: RecordedRequest[] = [];
  const timers = new Map<NodeJS.Timeout, () => void>();
  /** setTimeout-based sleep that stop() cuts short, so injected delays never outlive the server */
  const wait = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.set(t, resolve);
    });
  const held = new Set<() => void>();
  const hold = (): Promise<void> =>
    new Promise((resolve) => {
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
  const referrers = new Map<string, { body: Buffer; filters: boolean; pageSize?: number; pages?: Buffer[] }>();
  let listing: TagListing = {};
  const sentBytes = new Map<string, number>();
  const auth = new FakeAuth(sentBytes);
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
      if (method === 'HEAD' && (f.kind === 'cut' || f.kind === 'wrong-bytes' || f.kind === 'slow-body' || f.kind === 'bad-content-range')) continue; // body faults wait for a GET
      if (f.kind === 'cut' || f.kind === 'status' || f.kind === 'redirect' || f.kind === 'hold') {
        const times = f.left ?? f.times ?? (f.kind === 'cut' || f.kind === 'hold' ? 1 : Infinity);
        if (times <= 0) continue;
        f.left = times - 1;
      }
      return f;
    }
    return undefined;
  };

  const send = (req: IncomingMessage, res: ServerResponse, body: Blob, headers: Record<string, string>, fault: Fault | undefined): Promise<void> =>
    sendBody({ wait, sentBytes }, req, res, body, headers, fault);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    recorded.push({ method, path: req.url ?? '/', headers: { ...req.headers } });
    res.setHeader('docker-distribution-api-version', 'registry/2.0');
    if (auth.intercept(req, res, method, p, host)) return;
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
    m = /^\/v2\/(.+)\/referrers\/([^/]+)$/.exec(p);
    if (m && method === 'GET') {
      const fault = takeFault(method, p);
      if (fault?.kind === 'status') return void statusFault(res, fault);
      const list = referrers.get(`${m[1]}|${m[2]}`);
      const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.index.v1+json' };
      if (list?.pages) {
        const page = Number(url.searchParams.get('page') ?? '1');
        if (page < list.pages.length) headers.link = `<${url.pathname}?page=${page + 1}>; rel="next"`;
        return send(req, res, { bytes: list.pages[page - 1] ?? Buffer.alloc(0) }, headers, fault);
      }
      let body = list?.body ?? Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}');
      const at = url.searchParams.get('artifactType');
      if (list?.filters && at !== null) {
        const idx = JSON.parse(body.toString()) as { manifests: { artifactType?: string }[] };
        body = Buffer.from(JSON.stringify({ ...idx, manifests: idx.manifests.filter((d) => d.artifactType === at) }));
        headers['oci-filters-applied'] = 'artifactType';
      }
      if (list?.pageSize) {
        const idx = JSON.parse(body.toString()) as { manifests: unknown[] };
        const page = Number(url.searchParams.get('page') ?? '1');
        const from = (page - 1) * list.pageSize;
        body = Buffer.from(JSON.stringify({ ...idx, manifests: idx.manifests.slice(from, from + list.pageSize) }));
        if (from + list.pageSize < idx.manifests.length) headers.link = `<${url.pathname}?page=${page + 1}>; rel="next"`;
      }
      return send(req, res, { bytes: body }, headers, fault);
    }
    m = /^\/v2\/(.+)\/tags\/list$/.exec(p);
    if (m && method === 'GET') {
      const fault = takeFault(method, p);
      if (fault?.kind === 'status') return void statusFault(res, fault);
      const r = repos.get(m[1] ?? '');
      if (!r) return ociError(res, 404, 'NAME_UNKNOWN', `repository name not known: ${m[1]}`);
      const { body, headers } = tagPage(m[1] ?? '', [...r.tags.keys()], url, listing);
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
    setReferrers: (name, digest, body, opts) =>
      void referrers.set(`${name}|${digest}`, {
        body,
        filters: opts?.filters ?? false,
        ...(opts?.pageSize ? { pageSize: opts.pageSize } : {}),
        ...(opts?.pages ? { pages: opts.pages } : {}),
      }),
    requireAuth: (opts) => auth.require(opts),
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
    reset: () => {
      recorded = [];
      sentBytes.clear();
    },
    stop: async () => {
      let timer: NodeJS.Timeout | undefined;
      const closed = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, 5_000);
        server.close(() => resolve());
      });
      server.closeAllConnections();
      for (const [t, resolve] of timers) {
        clearTimeout(t);
        resolve();
      }
      timers.clear();
      await closed;
      clearTimeout(timer);
      await tmp.cleanup();
    },
  };
}
