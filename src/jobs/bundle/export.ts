// stevedore export: writes an OCI image layout archive of exactly the cached bytes of some images (no
// recompression, no manifest change), fetching what is not cached yet through the cache unless offline.
import { createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { Blobs } from '../../cache/blobs/service.js';
import type { Selection } from '../../oci/platform.js';
import { walkImage } from '../dag.js';
import type { ManifestResult, Manifests } from '../../cache/manifests.js';
import { Hasher, parseDigest, type Digest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { parseManifest, type Descriptor } from '../../oci/manifest.js';
import { MT, isIndexType } from '../../oci/media-types.js';
import type { Reference } from '../../oci/reference.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { Metadata } from '../../store/metadata.js';
import type { Target } from '../../upstream/registries.js';
import {
  BUNDLE_FILE,
  BUNDLE_FORMAT,
  CONTAINERD_NAME,
  INDEX_FILE,
  OCI_LAYOUT,
  OCI_LAYOUT_FILE,
  REF_NAME,
  blobEntryName,
  formatRef,
  stevedoreVersion,
  type BundleImage,
  type BundleInfo,
} from './layout.js';

export interface ExportDeps {
  proxy: { manifests: Manifests; blobs: Blobs };
  store: BlobStore;
  meta: Metadata;
}

export interface ExportOptions {
  images: { target: Target; reference: Reference }[];
  out: string;
  selection: Selection;
  /** Never fetch: a ref or blob that is not cached is an error (foreign layers are simply left out). */
  offline: boolean;
  now?: () => number;
}

/** An export that cannot be completed; the message names the ref or blob. Nothing is left at the output path. */
export class ExportError extends Error {}

/** One line for an OciError from the cache: its reason, not just "manifest unknown". */
export function explain(e: unknown): string {
  if (e instanceof OciError) {
    const d = e.detail as { reason?: string; upstreamStatus?: number } | undefined;
    return [e.message, d?.reason, d?.upstreamStatus ? `upstream answered ${d.upstreamStatus}` : undefined].filter(Boolean).join(': ');
  }
  return (e as Error).message;
}

type Sink = ReturnType<tar.Pack['entry']>;

interface Planned {
  info: BundleImage;
  manifests: ManifestResult[];
  blobs: Descriptor[];
}

const platformText = (p: { os?: string; architecture?: string; variant?: string }) =>
  [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');

const partialOf = (out: string) => `${out}.partial-${process.pid}`;

export async function exportBundle(deps: ExportDeps, opts: ExportOptions): Promise<BundleInfo> {
  try {
    // Fail before any fetching when the output cannot be written (a missing directory, no permission).
    await (await fsp.open(partialOf(opts.out), 'w')).close();
  } catch (e) {
    throw new ExportError(`${opts.out}: cannot write it (${(e as Error).message})`);
  }
  try {
    return await exportTo(deps, opts);
  } finally {
    // Renamed to `out` on success; on any failure nothing is left behind.
    await fsp.rm(partialOf(opts.out), { force: true });
  }
}

async function exportTo(deps: ExportDeps, opts: ExportOptions): Promise<BundleInfo> {
  const now = opts.now ?? Date.now;
  const planned = new Map<string, Planned>();
  for (const { target, reference } of opts.images) {
    const ref = formatRef(target.upstream.name, target.repo, reference);
    if (planned.has(ref)) continue;
    planned.set(ref, await plan(deps, opts, target, reference, ref));
  }
  const images = [...planned.values()];
  const manifests = new Map<Digest, ManifestResult>();
  const blobs = new Map<Digest, Descriptor>();
  for (const p of images) {
    for (const m of p.manifests) manifests.set(m.digest, m);
    for (const b of p.blobs) blobs.set(b.digest, b);
  }
  const bytes = [...manifests.values()].reduce((n, m) => n + m.body.length, 0) + [...blobs.values()].reduce((n, b) => n + b.size, 0);
  const info: BundleInfo = {
    format: BUNDLE_FORMAT,
    created: new Date(now()).toISOString(),
    stevedore: stevedoreVersion(),
    selection: { platforms: opts.selection.platforms?.map(platformText) ?? 'all', compression: opts.selection.compression },
    images: images.map((p) => p.info),
    totals: { images: images.length, manifests: manifests.size, blobs: blobs.size, bytes },
  };
  const index = {
    schemaVersion: 2,
    mediaType: MT.ociIndex,
    // Each root keeps its own media type (a Docker manifest list stays one) and is named by its full ref.
    manifests: images.map((p) => ({
      mediaType: p.info.mediaType,
      digest: p.info.digest,
      size: manifests.get(p.info.digest)!.body.length,
      annotations: { [REF_NAME]: p.info.ref, [CONTAINERD_NAME]: p.info.ref },
    })),
  };
  await writeArchive(
    deps.store,
    opts.out,
    new Date(now()),
    [
      [OCI_LAYOUT_FILE, json(OCI_LAYOUT)],
      [INDEX_FILE, json(index)],
      [BUNDLE_FILE, json(info, 2)],
    ],
    [...manifests.values()],
    [...blobs.values()],
  );
  return info;
}

const FETCH_CONCURRENCY = 4;

const json = (v: unknown, indent?: number): Buffer => Buffer.from(`${JSON.stringify(v, null, indent)}\n`);

/** Resolves one image through the cache and makes sure every blob it needs is on disk (or foreign and absent). */
async function plan(deps: ExportDeps, opts: ExportOptions, target: Target, reference: Reference, ref: string): Promise<Planned> {
  let dag;
  try {
    dag = await walkImage(deps.proxy.manifests, target, reference, opts.selection);
  } catch (e) {
    throw new ExportError(`${ref}: ${explain(e)}${opts.offline ? ' (offline: only cached images can be exported)' : ''}`);
  }
  const foreignNotIncluded: Digest[] = [];
  const missing: Descriptor[] = [];
  for (const d of dag.blobs) {
    if ((await cachedSize(deps, d.digest)) !== undefined) continue;
    // Foreign layers are never fetched for a bundle: included when cached (e.g. `stevedore foreign fetch`), else noted.
    if (d.foreign) foreignNotIncluded.push(d.digest);
    else if (opts.offline) throw new ExportError(`${ref}: blob ${d.digest} is not cached (offline: nothing is fetched)`);
    else missing.push(d);
  }
  // A few fills at a time, each one verified and committed by the cache as for any pull.
  const queue = [...missing];
  await Promise.all(
    Array.from({ length: Math.min(FETCH_CONCURRENCY, queue.length) }, async () => {
      for (let d = queue.shift(); d; d = queue.shift()) await fetchBlob(deps, target, d, ref);
    }),
  );
  await deps.proxy.blobs.drain();
  const blobs: Descriptor[] = [];
  for (const d of dag.blobs) {
    if (foreignNotIncluded.includes(d.digest)) continue;
    const size = await cachedSize(deps, d.digest);
    if (size === undefined) throw new ExportError(`${ref}: blob ${d.digest} could not be cached`);
    if (d.size >= 0 && size !== d.size) throw new ExportError(`${ref}: cached blob ${d.digest} has ${size} bytes, the manifest says ${d.size}`);
    blobs.push({ ...d, size });
  }
  const root = dag.root;
  const info: BundleImage = {
    ref,
    digest: root.digest,
    mediaType: root.mediaType,
    platforms: await platformsOf(deps, root, dag.manifests, blobs),
    manifests: dag.manifests.length,
    blobs: blobs.length,
    bytes: dag.manifests.reduce((n, m) => n + m.body.length, 0) + blobs.reduce((n, b) => n + b.size, 0),
    foreignNotIncluded,
  };
  return { info, manifests: dag.manifests, blobs };
}

async function cachedSize(deps: ExportDeps, digest: Digest): Promise<number | undefined> {
  const row = deps.meta.blobSize(digest);
  if (row === undefined) return undefined;
  return (await deps.store.size(digest)) === row ? row : undefined;
}

/** Pulls one blob through the cache (one verified, coalesced fill); the caller waits for the commits. */
async function fetchBlob(deps: ExportDeps, target: Target, d: Descriptor, ref: string): Promise<void> {
  let handle;
  try {
    handle = await deps.proxy.blobs.get(target, d.digest);
  } catch (e) {
    throw new ExportError(`${ref}: blob ${d.digest}: ${explain(e)}`);
  }
  if (handle.redirect || handle.outcome === 'pass-through') {
    handle.discard?.();
    throw new ExportError(
      `${ref}: blob ${d.digest} cannot be cached here (${handle.redirect ? `redirected to ${handle.redirect}` : 'the store is not writable'})`,
    );
  }
  try {
    for await (const _ of handle.open()) void _;
  } catch (e) {
    throw new ExportError(`${ref}: blob ${d.digest}: ${(e as Error).message}`);
  }
}

/** os/arch[/variant] of the images inside: from the index entries, or from the config of a single manifest. */
async function platformsOf(deps: ExportDeps, root: ManifestResult, manifests: ManifestResult[], blobs: Descriptor[]): Promise<string[]> {
  const out = new Set<string>();
  if (isIndexType(root.mediaType)) {
    const inside = new Set(manifests.map((m) => m.digest));
    for (const e of parseManifest(root.body, root.mediaType).descriptors) if (inside.has(e.digest) && e.platform) out.add(platformText(e.platform));
    return [...out];
  }
  const config = parseManifest(root.body, root.mediaType).descriptors.find((d) => d.kind === 'blob' && !d.subject);
  if (!config || config.size > 1 << 20 || !blobs.some((b) => b.digest === config.digest)) return [];
  try {
    const c = JSON.parse(await fsp.readFile(deps.store.paths.blob(config.digest), 'utf8')) as { os?: unknown; architecture?: unknown; variant?: unknown };
    if (typeof c.os === 'string' && typeof c.architecture === 'string') {
      out.add(platformText({ os: c.os, architecture: c.architecture, ...(typeof c.variant === 'string' ? { variant: c.variant } : {}) }));
    }
  } catch {
    // Not an image config (an artifact): no platform to report.
  }
  return [...out];
}

/**
 * Streams the archive into `<out>.partial-<pid>`, then fsyncs and renames it: a failed export leaves nothing
 * at `out`. Every blob is read from an open handle (eviction cannot cut it) and re-hashed on the way.
 */
async function writeArchive(
  store: BlobStore,
  out: string,
  mtime: Date,
  files: [string, Buffer][],
  manifests: ManifestResult[],
  blobs: Descriptor[],
): Promise<void> {
  const tmp = partialOf(out);
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(tmp, { highWaterMark: 1 << 20 }));
  written.catch(() => undefined);
  /** An entry whose errors surface through its callback (and the archive's), never as an unhandled 'error'. */
  const entry = (header: Parameters<tar.Pack['entry']>[0], body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      (body ? pack.entry(header, body, cb) : pack.entry(header, cb)).on('error', () => undefined);
    });
  try {
    for (const [name, body] of files) await entry({ name, size: body.length, mtime, mode: 0o644 }, body);
    const dirs = new Set(['blobs/', ...[...manifests.map((m) => m.digest), ...blobs.map((b) => b.digest)].map((d) => `blobs/${parseDigest(d)!.algorithm}/`)]);
    for (const name of dirs) await entry({ name, type: 'directory', mtime, mode: 0o755 });
    for (const m of manifests) await entry({ name: blobEntryName(m.digest), size: m.body.length, mtime, mode: 0o644 }, m.body);
    for (const b of blobs) await addBlob(store, pack, b.digest, b.size, mtime);
    pack.finalize();
    await written;
    const file = await fsp.open(tmp, 'r+');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await fsp.rename(tmp, out);
  } catch (e) {
    pack.destroy(e as Error);
    await written.catch(() => undefined);
    throw e instanceof ExportError ? e : new ExportError(`${out}: ${(e as Error).message}`);
  }
}

async function addBlob(store: BlobStore, pack: tar.Pack, digest: Digest, size: number, mtime: Date): Promise<void> {
  const fh = await store.openHandle(digest);
  if (!fh) throw new ExportError(`blob ${digest} disappeared from the cache during the export (evicted?); run the export again`);
  try {
    let entry!: Sink;
    const entryDone = new Promise<void>((ok, fail) => {
      entry = pack.entry({ name: blobEntryName(digest), size, mtime, mode: 0o644 }, (err) => (err ? fail(err) : ok()));
    });
    entry.on('error', () => undefined);
    entryDone.catch(() => undefined);
    const h = new Hasher(parseDigest(digest)!.algorithm);
    let n = 0;
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      const buf = chunk as Buffer;
      n += buf.length;
      if (n > size) break;
      h.update(buf);
      if (!entry.write(buf)) await drained(entry);
    }
    const got = n === size ? h.digest() : undefined;
    if (got !== digest) {
      throw new ExportError(
        `cached blob ${digest} is corrupt (${got ? `hashes to ${got}` : `${n} bytes, expected ${size}`}); run \`stevedore verify --repair\` and export again`,
      );
    }
    entry.end(undefined);
    await entryDone;
  } finally {
    await fh.close();
  }
}

/** Waits for a tar entry to accept more bytes; rejects if the archive fails meanwhile (never waits forever). */
function drained(s: Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      s.off('drain', onDrain);
      s.off('error', onError);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error('the archive was closed'));
    s.on('drain', onDrain);
    s.on('error', onError);
    s.on('close', onClose);
  });
}
