// Collects the referrers of an image's manifests through the cache (signatures, SBOMs): each subject's list, and the
// DAG of every artifact it lists (all platforms), so prefetch and export can carry them with the image.
import type { ManifestResult, Manifests } from '../cache/manifests.js';
import type { Referrers } from '../cache/referrers.js';
import { digestOf, type Digest } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { MT } from '../oci/media-types.js';
import type { Target } from '../upstream/registries.js';
import { walkImage, type ImageDag } from './dag.js';

export interface ReferrerSet {
  subject: Digest;
  /** The list itself as root (an image index, bytes as served), then every artifact manifest; blobs of them all. */
  dag: ImageDag;
  artifacts: number;
}

/**
 * For each subject with a non-empty list: the list and its artifacts' manifests and blobs (fetched and verified
 * through the cache). One level: referrers of the artifacts themselves are not followed.
 */
export async function walkReferrers(deps: { manifests: Manifests; referrers: Referrers }, target: Target, subjects: Digest[]): Promise<ReferrerSet[]> {
  const out: ReferrerSet[] = [];
  for (const subject of new Set(subjects)) {
    const list = await deps.referrers.get(target, subject);
    const entries = parseManifest(list.body, MT.ociIndex).descriptors.filter((d) => d.kind === 'manifest' && !d.subject);
    if (entries.length === 0) continue;
    const root: ManifestResult = { digest: digestOf(list.body), mediaType: MT.ociIndex, body: list.body, outcome: list.outcome === 'stale' ? 'stale' : 'hit' };
    const manifests: ManifestResult[] = [root];
    const blobs = new Map<Digest, Descriptor>();
    for (const e of entries) {
      const dag = await walkImage(deps.manifests, target, { kind: 'digest', digest: e.digest }, { compression: 'any' });
      manifests.push(...dag.manifests);
      for (const b of dag.blobs) blobs.set(b.digest, b);
    }
    out.push({ subject, dag: { root, manifests, blobs: [...blobs.values()] }, artifacts: entries.length });
  }
  return out;
}
