// stevedore export: writes an OCI image layout archive of exactly the cached bytes of some images (no
// recompression, no manifest change), fetching what is not cached yet through the cache unless offline.
import { promises as fsp } from 'node:fs';
import type { Blobs } from '../../cache/blobs/service.js';
import type { Selection } from '../../oci/platform.js';
import { walkImage, type ImageDag } from '../dag.js';
import { walkReferrers } from '../referrers.js';
import type { Referrers } from '../../cache/referrers.js';
import { referrersTag } from '../../oci/referrers.js';
import type { ManifestResult, Manifests } from '../../cache/manifests.js';
import type { Digest } from '../../oci/digest.js';
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
  formatRef,
  stevedoreVersion,
  type BundleImage,
  type BundleInfo,
} from './layout.js';
import { ExportError, partialOf, writeArchive } from './archive.js';

export { ExportError };

export interface ExportDeps {
  proxy: { manifests: Manifests; blobs: Blobs; referrers: Referrers };
  store: BlobStore;
  meta: Metadata;
}

export interface ExportOptions {
  images: { target: Target; reference: Reference }[];
  out: string;
  selection: Selection;
  /** Never fetch: a ref or blob that is not cached is an error (foreign layers are simply left out). */
  offline: boolean;
  /** Also carry the referrers (signatures, SBOMs) of each image's manifests, each list as its referrers tag. */
  referrers?: boolean;
  now?: () => number;
}

/** One line for an OciError from the cache: its reason, not just "manifest unknown". */
export function explain(e: unknown): string {
  if (e instanceof OciError) {
    const d = e.detail as { reason?: string; upstreamStatus?: number } | undefined;
    return [e.message, d?.reason, d?.upstreamStatus ? `upstream answered ${d.upstreamStatus}` : undefined].filter(Boolean).join(': ');
  }
  return (e as Error).message;
}

interface Planned {
  info: BundleImage;
  manifests: ManifestResult[];
  blobs: Descriptor[];
}

const platformText = (p: { os?: string; architecture?: string; variant?: string }) =>
  [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');

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
    let dag: ImageDag;
    try {
      dag = await walkImage(deps.proxy.manifests, target, reference, opts.selection);
    } catch (e) {
      throw new ExportError(`${ref}: ${explain(e)}${opts.offline ? ' (offline: only cached images can be exported)' : ''}`);
    }
    planned.set(ref, await plan(deps, opts, target, dag, ref));
    if (!opts.referrers) continue;
    // Each referrers list becomes one more root, named by the referrers tag schema (<alg>-<hex>): an importing
    // stevedore serves it as that tag, which is where its referrers API looks when no upstream answers.
    let sets;
    try {
      sets = await walkReferrers(
        deps.proxy,
        target,
        dag.manifests.map((m) => m.digest),
      );
    } catch (e) {
      throw new ExportError(`${ref}: referrers: ${explain(e)}`);
    }
    for (const set of sets) {
      const listRef = formatRef(target.upstream.name, target.repo, { kind: 'tag', tag: referrersTag(set.subject) });
      if (!planned.has(listRef)) planned.set(listRef, await plan(deps, opts, target, set.dag, listRef));
    }
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

/** Makes sure every blob it needs is on disk (or foreign and absent). */
async function plan(deps: ExportDeps, opts: ExportOptions, target: Target, dag: ImageDag, ref: string): Promise<Planned> {
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
