// Walks an image's DAG through the cache: the root, the child manifests of the selected platforms (and
// compression variant), and the blobs they reference. Used by prefetch, pin, export and scheduled warming.
import type { Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { isIndexType } from '../oci/media-types.js';
import { selectEntries, type Selection } from '../oci/platform.js';
import type { Reference } from '../oci/reference.js';
import type { Target } from '../upstream/registries.js';
import type { ManifestResult, Manifests } from '../cache/manifests.js';

export interface ImageDag {
  root: ManifestResult;
  /** The root and every selected child manifest. */
  manifests: ManifestResult[];
  /** Config and layer descriptors of the selected manifests, each digest once. */
  blobs: Descriptor[];
}

/** Resolves `reference` and the selected part of its DAG (manifests fetched and verified through the cache). */
export async function walkImage(
  manifests: Manifests,
  target: Target,
  reference: Reference,
  sel: Selection,
  opts: { revalidate?: boolean } = {},
): Promise<ImageDag> {
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
