// Referrers (distribution-spec 1.1): the referrers tag schema, the empty list, and filtering a list by artifactType.
import type { Digest } from './digest.js';
import { MT } from './media-types.js';

/** What a registry answers when nothing refers to a digest: an empty image index. */
export const EMPTY_REFERRERS = Buffer.from(`{"schemaVersion":2,"mediaType":"${MT.ociIndex}","manifests":[]}`);

/** The referrers tag schema: algorithm (max 32 chars) "-" encoded (max 64 chars), other characters as "-". */
export function referrersTag(digest: Digest): string {
  const colon = digest.indexOf(':');
  return `${digest.slice(0, colon).slice(0, 32)}-${digest.slice(colon + 1).slice(0, 64)}`.replace(/[^a-zA-Z0-9._-]/g, '-');
}

// RFC 6838 type/subtype (restricted-name), as artifactType values are.
const MEDIA_TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

export function isMediaType(value: string): boolean {
  return MEDIA_TYPE_RE.test(value);
}

/**
 * The list with only the descriptors whose artifactType is `artifactType` (what a registry does for
 * ?artifactType=). undefined when `body` is not an image index with a manifests array.
 */
export function filterReferrers(body: Uint8Array, artifactType: string): Buffer | undefined {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    return undefined;
  }
  const index = json as { manifests?: unknown };
  if (typeof json !== 'object' || json === null || !Array.isArray(index.manifests)) return undefined;
  const manifests = index.manifests.filter((d) => (d as { artifactType?: unknown } | null)?.artifactType === artifactType);
  return Buffer.from(JSON.stringify({ ...index, manifests }));
}
