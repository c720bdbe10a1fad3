// Builds real, deterministic image content (configs, manifests, indexes over tar layers) and pushes it over the registry HTTP API.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { request } from 'undici';
import { MT } from './media-types.ts';
import { describeFile, makeLayerFile, type Compression } from './tar.ts';

// Layer files are built in tar.ts and media types listed in media-types.ts; importable from here too.
export { MT };
export { cleanupLayerFiles, makeLayerFile, type Compression, type LayerFile } from './tar.ts';

export interface LayerSpec {
  seed: number;
  sizeBytes: number;
  compression?: Compression;
}
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
export interface PushedLayer {
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
  path?: string;
  urls?: string[];
}
export interface PushedImage {
  repo: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  manifestMediaType: string;
  configDigest: string;
  configBytes: Buffer;
  layers: PushedLayer[];
  platform: Platform;
}
export interface PushedIndex {
  repo: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  manifestMediaType: string;
  /** children in index order */
  manifests: PushedImage[];
}

export function sha256(buf: Buffer | string): string {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}`;
}

/** Stable 31-bit seed from a string (so each repo:tag gets its own content unless a seed is given). */
export function seedOf(s: string): number {
  return createHash('sha256').update(s).digest().readUInt32BE(0) & 0x7fffffff;
}

// ---------- registry push API ----------

const base = (u: string): string => {
  const url = new URL(u);
  url.username = '';
  url.password = '';
  return url.href.replace(/\/+$/, '');
};
/** A registry URL may carry user:password (an htpasswd registry): sent as Basic auth on every push request. */
const authOf = (u: string): Record<string, string> => {
  const url = new URL(u);
  if (!url.username) return {};
  const creds = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return { authorization: `Basic ${Buffer.from(creds).toString('base64')}` };
};

/** Upload one blob (monolithic POST+PUT) unless HEAD says it exists. */
export async function pushBlob(registryUrl: string, repo: string, digest: string, body: Buffer | { path: string; size: number }): Promise<void> {
  const r = base(registryUrl);
  const auth = authOf(registryUrl);
  const head = await request(`${r}/v2/${repo}/blobs/${digest}`, { method: 'HEAD', headers: auth });
  await head.body.dump();
  if (head.statusCode === 200) return;
  const post = await request(`${r}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth });
  const postText = await post.body.text();
  const loc = post.headers.location;
  if (post.statusCode !== 202 || typeof loc !== 'string') throw new Error(`POST upload ${repo}: ${post.statusCode} ${postText}`);
  const abs = new URL(loc, `${r}/`).toString();
  const url = `${abs}${abs.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
  const size = Buffer.isBuffer(body) ? body.length : body.size;
  const put = await request(url, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: Buffer.isBuffer(body) ? body : createReadStream(body.path),
  });
  const putText = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`PUT blob ${repo}@${digest}: ${put.statusCode} ${putText}`);
}

/** PUT a manifest (by tag or digest); returns its digest after checking Docker-Content-Digest. */
export async function pushManifest(registryUrl: string, repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<string> {
  const res = await request(`${base(registryUrl)}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT',
    headers: { ...authOf(registryUrl), 'content-type': mediaType },
    body: bytes,
  });
  const text = await res.body.text();
  if (res.statusCode !== 201) throw new Error(`PUT manifest ${repo}:${ref}: ${res.statusCode} ${text}`);
  const digest = sha256(bytes);
  const got = res.headers['docker-content-digest'];
  if (got !== undefined && got !== digest) throw new Error(`registry digest ${String(got)} != ${digest}`);
  return digest;
}

const json = (o: unknown): Buffer => Buffer.from(`${JSON.stringify(o, null, 2)}\n`); // pretty bytes on purpose: re-serialising proxies get caught

function toDocker(mt: string): string {
  return mt === MT.ociGzip ? MT.dockerGzip : mt === MT.ociTar ? MT.dockerTar : mt === MT.ociForeign ? MT.dockerForeign : mt;
}

/** Push config + manifest for already-built layers (layers with urls are foreign and NOT uploaded). */
async function pushFromLayers(
  registryUrl: string,
  repo: string,
  ref: string | undefined,
  layers: PushedLayer[],
  mediaTypes: 'oci' | 'docker',
  platform: Platform,
): Promise<PushedImage> {
  const docker = mediaTypes === 'docker';
  const config = {
    created: '2024-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'], Labels: { 'stevedore.test': repo } },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `stevedore test layer ${i} ${l.digest.slice(7, 19)}` })),
  };
  const configBytes = json(config);
  const configDigest = sha256(configBytes);
  await pushBlob(registryUrl, repo, configDigest, configBytes);
  for (const l of layers) if (!l.urls && l.path) await pushBlob(registryUrl, repo, l.digest, { path: l.path, size: l.size });
  const manifestMediaType = docker ? MT.dockerManifest : MT.ociManifest;
  const manifestBytes = json({
    schemaVersion: 2,
    mediaType: manifestMediaType,
    config: { mediaType: docker ? MT.dockerConfig : MT.ociConfig, digest: configDigest, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.urls ? { urls: l.urls } : {}) })),
  });
  const manifestDigest = await pushManifest(registryUrl, repo, ref ?? sha256(manifestBytes), manifestBytes, manifestMediaType);
  return { repo, manifestDigest, manifestBytes, manifestMediaType, configDigest, configBytes, layers, platform };
}

async function buildLayers(specs: LayerSpec[], mediaTypes: 'oci' | 'docker'): Promise<PushedLayer[]> {
  const out: PushedLayer[] = [];
  for (const s of specs) {
    const f = await makeLayerFile(s.seed, s.sizeBytes, s.compression ?? 'gzip');
    out.push({ digest: f.digest, size: f.size, diffId: f.diffId, path: f.path, mediaType: mediaTypes === 'docker' ? toDocker(f.mediaType) : f.mediaType });
  }
  return out;
}

const AMD64: Platform = { os: 'linux', architecture: 'amd64' };
const ARM64: Platform = { os: 'linux', architecture: 'arm64', variant: 'v8' };

/** Build and push a single-platform image; tag may be a digest-less tag name. */
export async function pushImage(
  registryUrl: string,
  repo: string,
  tag: string,
  opts: { layers: LayerSpec[]; mediaTypes: 'oci' | 'docker'; platform?: Platform },
): Promise<PushedImage> {
  return pushFromLayers(registryUrl, repo, tag, await buildLayers(opts.layers, opts.mediaTypes), opts.mediaTypes, opts.platform ?? AMD64);
}

function platformOf(p: Platform): Record<string, string> {
  return { architecture: p.architecture, os: p.os, ...(p.variant ? { variant: p.variant } : {}) };
}

async function pushList(
  registryUrl: string,
  repo: string,
  tag: string,
  docker: boolean,
  children: PushedImage[],
  annotations: (Record<string, string> | undefined)[],
): Promise<PushedIndex> {
  const manifestMediaType = docker ? MT.dockerList : MT.ociIndex;
  const manifestBytes = json({
    schemaVersion: 2,
    mediaType: manifestMediaType,
    manifests: children.map((c, i) => ({
      mediaType: c.manifestMediaType,
      digest: c.manifestDigest,
      size: c.manifestBytes.length,
      platform: platformOf(c.platform),
      ...(annotations[i] ? { annotations: annotations[i] } : {}),
    })),
  });
  const manifestDigest = await pushManifest(registryUrl, repo, tag, manifestBytes, manifestMediaType);
  return { repo, manifestDigest, manifestBytes, manifestMediaType, manifests: children };
}

/**
 * OCI index: [0] linux/amd64 (gzip), [1] linux/arm64/v8, [2] linux/amd64 whose layers are labelled zstd,
 * annotated io.containerd.image.compression=zstd (listed last so platform matchers pick [0]).
 */
export async function pushOciIndex(
  registryUrl: string,
  repo: string,
  tag: string,
  opts: { seed?: number; layerSize?: number; layers?: number } = {},
): Promise<PushedIndex & { amd64: PushedImage; arm64: PushedImage; amd64Zstd: PushedImage }> {
  const seed = opts.seed ?? seedOf(`${repo}:${tag}`);
  const n = opts.layers ?? 2;
  const size = opts.layerSize ?? 16 * 1024;
  const specs = (off: number, compression: Compression): LayerSpec[] =>
    Array.from({ length: n }, (_, i) => ({ seed: seed + off + i, sizeBytes: size + i * 1000, compression }));
  const amd64 = await pushFromLayers(registryUrl, repo, undefined, await buildLayers(specs(0, 'gzip'), 'oci'), 'oci', AMD64);
  const arm64 = await pushFromLayers(registryUrl, repo, undefined, await buildLayers(specs(100, 'gzip'), 'oci'), 'oci', ARM64);
  const amd64Zstd = await pushFromLayers(registryUrl, repo, undefined, await buildLayers(specs(0, 'zstd'), 'oci'), 'oci', AMD64);
  const idx = await pushList(registryUrl, repo, tag, false, [amd64, arm64, amd64Zstd], [undefined, undefined, { 'io.containerd.image.compression': 'zstd' }]);
  return { ...idx, amd64, arm64, amd64Zstd };
}

/** Docker manifest list of two docker schema2 images: linux/amd64 and linux/arm64/v8. */
export async function pushDockerManifestList(
  registryUrl: string,
  repo: string,
  tag: string,
  opts: { seed?: number } = {},
): Promise<PushedIndex & { amd64: PushedImage; arm64: PushedImage }> {
  const seed = opts.seed ?? seedOf(`${repo}:${tag}`);
  const amd64 = await pushFromLayers(
    registryUrl,
    repo,
    undefined,
    await buildLayers(
      [
        { seed, sizeBytes: 20_000 },
        { seed: seed + 1, sizeBytes: 7_000 },
      ],
      'docker',
    ),
    'docker',
    AMD64,
  );
  const arm64 = await pushFromLayers(
    registryUrl,
    repo,
    undefined,
    await buildLayers(
      [
        { seed: seed + 100, sizeBytes: 21_000 },
        { seed: seed + 101, sizeBytes: 6_000 },
      ],
      'docker',
    ),
    'docker',
    ARM64,
  );
  const list = await pushList(registryUrl, repo, tag, true, [amd64, arm64], []);
  return { ...list, amd64, arm64 };
}

/** Single-platform OCI image with nLayers small gzip layers of varied sizes (1 KiB .. ~100 KiB). */
export async function pushMultiLayer(
  registryUrl: string,
  repo: string,
  tag: string,
  nLayers: number,
  opts: { seed?: number; mediaTypes?: 'oci' | 'docker' } = {},
): Promise<PushedImage> {
  const seed = opts.seed ?? seedOf(`${repo}:${tag}`);
  const layers = Array.from({ length: nLayers }, (_, i) => ({ seed: seed + i, sizeBytes: 1024 + ((i * 37_813) % 100_000) }));
  return pushImage(registryUrl, repo, tag, { layers, mediaTypes: opts.mediaTypes ?? 'oci' });
}

/** Single-platform OCI image with one big UNCOMPRESSED tar layer of sizeMiB, streamed from a temp file. */
export async function pushBigLayer(registryUrl: string, repo: string, tag: string, sizeMiB: number, opts: { seed?: number } = {}): Promise<PushedImage> {
  const seed = opts.seed ?? seedOf(`${repo}:${tag}`);
  return pushImage(registryUrl, repo, tag, { layers: [{ seed, sizeBytes: sizeMiB * 1024 * 1024, compression: 'none' }], mediaTypes: 'oci' });
}

/**
 * Image whose LAST layer is foreign/non-distributable with `urls`; that blob is NOT pushed.
 * The registry must be started with allowForeignUrls. The first layer is a normal pushed one.
 */
export async function pushForeignImage(
  registryUrl: string,
  repo: string,
  tag: string,
  opts: { foreignBlobPath: string; urls: string[]; style: 'docker' | 'oci'; seed?: number },
): Promise<PushedImage> {
  const seed = opts.seed ?? seedOf(`${repo}:${tag}`);
  const [normal] = await buildLayers([{ seed, sizeBytes: 8_000 }], opts.style);
  const foreign: PushedLayer = {
    ...(await describeFile(opts.foreignBlobPath)),
    path: opts.foreignBlobPath,
    urls: opts.urls,
    mediaType: opts.style === 'docker' ? MT.dockerForeign : MT.ociForeign,
  };
  return pushFromLayers(registryUrl, repo, tag, [normal!, foreign], opts.style, AMD64);
}
