// stevedore import: streams every entry of an OCI image layout archive (in any order) to a temp file while hashing,
// verifies digests, sizes and the image graph, and only then commits: blobs renamed into the CAS, then every row
// (blobs, manifests, links, refs, tags) in one SQLite transaction. A refused bundle leaves nothing behind.
import { promises as fsp } from 'node:fs';
import type { Digest } from '../../oci/digest.js';
import { OciError } from '../../oci/errors.js';
import { MANIFEST_MAX_BYTES, parseManifest, type Descriptor, type ParsedManifest } from '../../oci/manifest.js';
import { MANIFEST_MEDIA_TYPES, MT, baseMediaType } from '../../oci/media-types.js';
import { FOREIGN_HOLDER, provesHeld, type ManifestRow } from '../../store/metadata.js';
import type { Target } from '../../upstream/registries.js';
import { ImportError, readArchive, type StageDeps, type Staged } from './stage.js';
import { blobEntryName, destinationOf, type BundleInfo, type FullRef } from './layout.js';

export interface ImportDeps extends StageDeps {
  /** Maps `host/repo` to the configured upstream and repository name (throws DENIED for an unknown host). */
  resolve(name: string): Target;
  /** Called inside the transaction for each new manifest (records its foreign layers). */
  onManifest?(target: Target, digest: Digest, parsed: ParsedManifest): void;
}

export { ImportError };

export interface ImportOptions {
  file: string;
  /** --name: the destination for roots whose annotation has no registry host. */
  name?: FullRef;
}

export interface ImportResult {
  images: { ref: string; digest: Digest }[];
  manifests: { total: number; added: number };
  blobs: { total: number; added: number; addedBytes: number };
  tags: { changed: number; unchanged: number };
  /** Foreign layers referenced but not in the bundle (never cached where it was made): fine, and reported. */
  foreignNotIncluded: Digest[];
  /** Index children not in the bundle (an export of some platforms only). */
  manifestsNotIncluded: Digest[];
  /** stevedore-bundle.json, when the bundle has one (informational only: nothing in it is trusted). */
  bundle?: BundleInfo;
}

export async function importBundle(deps: ImportDeps, opts: ImportOptions): Promise<ImportResult> {
  const staged = new Map<Digest, Staged>();
  const temps: string[] = [];
  try {
    const small = await readArchive(deps, opts.file, staged, temps);
    const plan = await planImport(deps, opts, staged, small);
    return await commit(deps, plan, small);
  } finally {
    // Whatever was not renamed into the CAS (all of it, when refused) goes.
    for (const t of temps) await deps.store.removeTemp(t).catch(() => undefined);
  }
}

interface PlannedManifest {
  target: Target;
  row: ManifestRow;
  parsed: ParsedManifest;
}
interface Plan {
  images: { ref: string; digest: Digest; target: Target; tag?: string }[];
  manifests: PlannedManifest[];
  blobs: Map<Digest, Staged>;
  foreignNotIncluded: Set<Digest>;
  manifestsNotIncluded: Set<Digest>;
}

function fail(entry: string, e: unknown): ImportError {
  if (e instanceof OciError) {
    const d = e.detail as { reason?: string; hint?: string } | string | undefined;
    const why = typeof d === 'string' ? d : [d?.reason, d?.hint].filter(Boolean).join('; ');
    return new ImportError(`${entry}: ${e.message}${why ? `: ${why}` : ''}`);
  }
  return new ImportError(`${entry}: ${(e as Error).message}`);
}

/** Checks the layout, names every root, and walks each image graph over what the archive holds. */
async function planImport(deps: ImportDeps, opts: ImportOptions, staged: Map<Digest, Staged>, small: Map<string, Buffer>): Promise<Plan> {
  const layout = small.get('layout');
  if (!layout) throw new ImportError('oci-layout: missing; this is not an OCI image layout archive');
  let version: unknown;
  try {
    version = (JSON.parse(layout.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (typeof version !== 'string' || !version.startsWith('1.')) throw new ImportError(`oci-layout: unsupported imageLayoutVersion ${JSON.stringify(version)}`);
  const indexBody = small.get('index');
  if (!indexBody) throw new ImportError('index.json: missing; this is not an OCI image layout archive');
  let index: ParsedManifest;
  try {
    index = parseManifest(indexBody, MT.ociIndex);
  } catch (e) {
    throw fail('index.json', e);
  }
  const roots = index.descriptors.filter((d) => d.kind === 'manifest' && !d.subject);
  if (roots.length === 0) throw new ImportError('index.json: names no images');
  const plan: Plan = { images: [], manifests: [], blobs: new Map(), foreignNotIncluded: new Set(), manifestsNotIncluded: new Set() };
  const tags = new Map<string, Digest>();
  const done = new Set<string>();
  for (const root of roots) {
    const dest = destinationOf(root.annotations, opts.name);
    if (typeof dest === 'string') throw new ImportError(`index.json: image ${root.digest} ${dest}`);
    const ref = `${dest.name}${dest.tag !== undefined ? `:${dest.tag}` : ''}${dest.digest ? `@${dest.digest}` : ''}`;
    if (dest.digest && dest.digest !== root.digest) throw new ImportError(`index.json: ${ref} names ${dest.digest} but points at ${root.digest}`);
    let target: Target;
    try {
      target = deps.resolve(dest.name);
    } catch (e) {
      throw fail(`index.json: ${ref}`, e);
    }
    if (!staged.has(root.digest)) throw new ImportError(`${blobEntryName(root.digest)}: missing; index.json names it for ${ref}`);
    if (dest.tag !== undefined) {
      const key = `${target.upstream.name}/${target.repo}:${dest.tag}`;
      if (tags.has(key) && tags.get(key) !== root.digest) throw new ImportError(`index.json: two images for ${key} (${tags.get(key)} and ${root.digest})`);
      tags.set(key, root.digest);
    }
    plan.images.push({ ref, digest: root.digest, target, ...(dest.tag !== undefined ? { tag: dest.tag } : {}) });
    await walk(deps, staged, plan, target, root, done);
  }
  return plan;
}

async function walk(deps: ImportDeps, staged: Map<Digest, Staged>, plan: Plan, target: Target, root: Descriptor, done: Set<string>): Promise<void> {
  const queue: Descriptor[] = [root];
  while (queue.length > 0) {
    const d = queue.shift()!;
    const key = `${target.upstream.name}|${target.repo}|${d.digest}`;
    if (done.has(key)) continue;
    done.add(key);
    const st = staged.get(d.digest);
    if (!st) {
      // An index entry of a platform that was not exported: the index is kept unchanged, the child is just absent.
      plan.manifestsNotIncluded.add(d.digest);
      continue;
    }
    if (d.size !== st.size) throw new ImportError(`${st.entry}: ${st.size} bytes, but its descriptor says ${d.size}`);
    if (st.size > MANIFEST_MAX_BYTES) throw new ImportError(`${st.entry}: a manifest larger than ${MANIFEST_MAX_BYTES} bytes`);
    const body = await bodyOf(deps, st);
    const declared = baseMediaType(d.mediaType);
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(body, declared || undefined);
    } catch (e) {
      throw fail(st.entry, e);
    }
    const mediaType = MANIFEST_MEDIA_TYPES.includes(declared) ? declared : parsed.mediaType;
    plan.manifests.push({ target, row: { digest: d.digest, mediaType, body }, parsed });
    for (const c of parsed.descriptors) {
      if (c.subject) continue;
      if (c.kind === 'manifest') {
        queue.push(c);
        continue;
      }
      const b = staged.get(c.digest);
      if (!b) {
        if (c.foreign) plan.foreignNotIncluded.add(c.digest);
        else throw new ImportError(`${blobEntryName(c.digest)}: missing; manifest ${d.digest} references it`);
        continue;
      }
      if (c.size >= 0 && c.size !== b.size) throw new ImportError(`${b.entry}: ${b.size} bytes, but manifest ${d.digest} says ${c.size}`);
      plan.blobs.set(c.digest, b);
    }
  }
}

async function bodyOf(deps: ImportDeps, st: Staged): Promise<Buffer> {
  if (st.temp) return fsp.readFile(st.temp);
  return deps.meta.getManifest(st.digest)?.body ?? fsp.readFile(deps.store.paths.blob(st.digest));
}

async function commit(deps: ImportDeps, plan: Plan, small: Map<string, Buffer>): Promise<ImportResult> {
  const { meta, store } = deps;
  // Blob files first (verified, fsync + rename), rows after: a crash in between leaves files no row names,
  // which nothing serves (startup reconciliation adopts them as unlinked blobs).
  for (const b of plan.blobs.values()) {
    if (!b.temp) continue;
    const fh = await fsp.open(b.temp, 'r');
    try {
      await store.commit(b.temp, fh, b.digest);
    } finally {
      await fh.close();
    }
  }
  const result: ImportResult = {
    images: plan.images.map((i) => ({ ref: i.ref, digest: i.digest })),
    manifests: { total: new Set(plan.manifests.map((m) => m.row.digest)).size, added: 0 },
    blobs: { total: plan.blobs.size, added: 0, addedBytes: 0 },
    tags: { changed: 0, unchanged: 0 },
    foreignNotIncluded: [...plan.foreignNotIncluded],
    manifestsNotIncluded: [...plan.manifestsNotIncluded],
  };
  meta.db.transaction(() => {
    for (const b of plan.blobs.values()) {
      if (meta.blobSize(b.digest) !== undefined) continue;
      meta.putBlob(b.digest, b.size);
      result.blobs.added++;
      result.blobs.addedBytes += b.size;
    }
    for (const m of plan.manifests) {
      const up = m.target.upstream.name;
      const existed = meta.getManifest(m.row.digest) !== undefined;
      if (existed && meta.isLinked(up, m.target.repo, m.row.digest)) continue;
      if (!existed) result.manifests.added++;
      meta.putManifest(up, m.target.repo, m.row, m.parsed.descriptors);
      // The bundle's verified bytes stand for the upstream they were exported from (foreign ones for their URLs).
      for (const d of m.parsed.descriptors) if (d.kind === 'blob' && plan.blobs.has(d.digest)) meta.addHolder(provesHeld(d) ? up : FOREIGN_HOLDER, d.digest);
      deps.onManifest?.(m.target, m.row.digest, m.parsed);
    }
    for (const i of plan.images) {
      if (i.tag === undefined) continue;
      const cur = meta.getTag(i.target.upstream.name, i.target.repo, i.tag);
      if (cur?.digest === i.digest) {
        result.tags.unchanged++;
        continue;
      }
      meta.putTag(i.target.upstream.name, i.target.repo, i.tag, i.digest);
      result.tags.changed++;
    }
  })();
  const info = small.get('bundle');
  if (info) {
    try {
      result.bundle = JSON.parse(info.toString('utf8')) as BundleInfo;
    } catch {
      // Informational only.
    }
  }
  return result;
}
