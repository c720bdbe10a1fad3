// Walks an image's DAG through the cache: the root, the child manifests of the selected platforms (and
// compression variant), and the blobs they reference. Used by prefetch, pin, export and scheduled warming.
import type { Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { isIndexType } from '../oci/media-types.js';
import type { Reference } from '../oci/reference.js';
import type { Target } from '../upstream/registries.js';
import type { ManifestResult, Manifests } from '../cache/manifests.js';

export interface Platform { os: string; architecture: string; variant?: string }
export type Compression = 'gzip' | 'zstd' | 'any';
export interface Selection {
  /** undefined: every platform. */
  platforms?: Platform[];
  compression: Compression;
}

export interface ImageDag {
  root: ManifestResult;
  /** The root and every selected child manifest. */
  manifests: ManifestResult[];
  /** Config and layer descriptors of the selected manifests, each digest once. */
  blobs: Descriptor[];
}

/** Parses os/arch[/variant], e.g. linux/arm64/v8. */
export function parsePlatform(value: string): Platform {
  const [os, architecture, variant, ...rest] = value.split('/');
  if (!os || !architecture || rest.length > 0) throw new Error(`invalid platform "${value}" (expected os/arch[/variant])`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

// arm64's variant is v8 when unstated (containerd's platform normalisation).
const normVariant = (p: { architecture?: string; variant?: string }) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);

export function platformMatches(want: Platform, have: Descriptor['platform']): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  return want.variant === undefined || normVariant(want) === normVariant(have);
}

/** An index entry marked as the zstd variant (containerd's annotation, or platform.features). */
export function isZstdEntry(d: Descriptor): boolean {
  return d.annotations?.['io.containerd.image.compression'] === 'zstd' || (d.platform?.features ?? []).includes('zstd');
}

/** Picks index entries: per wanted platform, the variant of the wanted compression (falling back to the other). */
export function selectEntries(entries: Descriptor[], sel: Selection): Descriptor[] {
  const images = entries.filter((e) => e.kind === 'manifest' && !e.subject);
  // Attestations and other non-platform entries (platform unknown/unknown) are not images to pull.
  const real = images.filter((e) => e.platform?.os !== 'unknown');
  const groups = sel.platforms ? sel.platforms.map((p) => real.filter((e) => platformMatches(p, e.platform))) : groupByPlatform(real);
  const out: Descriptor[] = [];
  for (const g of groups) {
    if (sel.compression === 'any') out.push(...g);
    else {
      const preferred = g.filter((e) => isZstdEntry(e) === (sel.compression === 'zstd'));
      out.push(...(preferred.length > 0 ? preferred : g));
    }
  }
  return [...new Map(out.map((e) => [e.digest, e])).values()];
}

function groupByPlatform(entries: Descriptor[]): Descriptor[][] {
  const groups = new Map<string, Descriptor[]>();
  for (const e of entries) {
    const p = e.platform;
    const key = p ? `${p.os}/${p.architecture}/${normVariant(p) ?? ''}` : e.digest;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return [...groups.values()];
}

/** Resolves `reference` and the selected part of its DAG (manifests fetched and verified through the cache). */
export async function walkImage(manifests: Manifests, target: Target, reference: Reference, sel: Selection, opts: { revalidate?: boolean } = {}): Promise<ImageDag> {
  const root = await manifests.get(target, reference, undefined, opts);
  const selected: ManifestResult[] = [root];
  const queue: ManifestResult[] = [root];
  const blobs = new Map<Digest, Descriptor>();
  while (queue.length > 0) {
    const m = queue.shift()!;
    const parsed = parseManifest(m.body, m.mediaType);
    if (isIndexType(m.mediaType)) {
      for (const e of selectEntries(parsed.descriptors, sel)) {
        const child = await manifests.get(target, { kind: 'digest', digest: e.digest }, undefined);
        selected.push(child);
        queue.push(child);
      }
    } else {
      for (const d of parsed.descriptors) if (!d.subject && d.kind === 'blob') blobs.set(d.digest, d);
    }
  }
  return { root, manifests: selected, blobs: [...blobs.values()] };
}
