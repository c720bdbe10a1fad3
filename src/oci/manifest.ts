// Parses a manifest or index WITHOUT changing it: checks its media type and lists what it references.
import { parseDigest, type Digest } from './digest.js';
import { OciError } from './errors.js';
import { MT, MANIFEST_MEDIA_TYPES, baseMediaType, isForeignMediaType } from './media-types.js';

export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  digest: Digest;
  size: number;
  mediaType: string;
  urls: string[];
  /** 'manifest' for index children, 'blob' for config, layers, and anything else by digest. */
  kind: 'manifest' | 'blob';
  foreign: boolean;
  /** The manifest this one refers to (referrers API); not a child: keeping this one does not keep it. */
  subject?: boolean;
  platform?: { os?: string; architecture?: string; variant?: string; features?: string[] };
  annotations?: Record<string, string>;
}

export interface ParsedManifest {
  mediaType: string;
  /** Every descriptor the manifest references (index children, config, layers, subject). */
  descriptors: Descriptor[];
}

type Json = Record<string, unknown>;

function invalid(detail: string): OciError {
  return new OciError('MANIFEST_INVALID', detail);
}

function descriptor(raw: unknown, kind: 'manifest' | 'blob', where: string): Descriptor {
  if (typeof raw !== 'object' || raw === null) throw invalid(`${where}: not an object`);
  const d = raw as Json;
  const digest = typeof d.digest === 'string' ? parseDigest(d.digest) : undefined;
  if (!digest) throw invalid(`${where}: invalid digest`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw invalid(`${where}: invalid size`);
  const mediaType = typeof d.mediaType === 'string' ? d.mediaType : '';
  const urls = Array.isArray(d.urls) ? d.urls.filter((u): u is string => typeof u === 'string') : [];
  const out: Descriptor = { digest: digest.digest, size: d.size, mediaType, urls, kind, foreign: isForeignMediaType(mediaType) };
  if (typeof d.platform === 'object' && d.platform !== null) out.platform = d.platform as Descriptor['platform'];
  if (typeof d.annotations === 'object' && d.annotations !== null) out.annotations = d.annotations as Record<string, string>;
  return out;
}

function list(value: unknown, kind: 'manifest' | 'blob', where: string): Descriptor[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`${where}: not an array`);
  return value.map((v, i) => descriptor(v, kind, `${where}[${i}]`));
}

/**
 * Parses body as the manifest kind named by contentType. The body's own mediaType, when present,
 * must agree with contentType (CVE-2021-41190: a body that means something else than its header says).
 */
export function parseManifest(body: Uint8Array, contentType: string | undefined): ParsedManifest {
  if (body.length > MANIFEST_MAX_BYTES) throw invalid(`manifest larger than ${MANIFEST_MAX_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'));
  } catch {
    throw invalid('manifest is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('manifest is not a JSON object');
  const m = json as Json;
  const declared = typeof m.mediaType === 'string' ? m.mediaType : undefined;
  let mediaType = baseMediaType(contentType);
  if (declared && mediaType && declared !== mediaType && MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw invalid(`mediaType ${declared} in body disagrees with Content-Type ${mediaType}`);
  }
  if (!mediaType || mediaType === 'application/json' || mediaType === 'application/octet-stream') {
    mediaType = declared ?? guessMediaType(m);
  }
  const descriptors: Descriptor[] = [];
  if (Array.isArray(m.manifests)) {
    // An index must not also look like an image manifest (CVE-2021-41190 "ambiguous manifest").
    if (m.layers !== undefined || m.config !== undefined) throw invalid('document has both manifests and layers/config');
    descriptors.push(...list(m.manifests, 'manifest', 'manifests'));
  } else {
    if (m.config !== undefined) descriptors.push(descriptor(m.config, 'blob', 'config'));
    descriptors.push(...list(m.layers, 'blob', 'layers'));
    if (Array.isArray(m.fsLayers)) {
      // Docker schema1: fsLayers carry only blobSum; size unknown.
      for (const [i, l] of m.fsLayers.entries()) {
        const d = typeof (l as Json)?.blobSum === 'string' ? parseDigest((l as Json).blobSum as string) : undefined;
        if (!d) throw invalid(`fsLayers[${i}]: invalid blobSum`);
        descriptors.push({ digest: d.digest, size: -1, mediaType: '', urls: [], kind: 'blob', foreign: false });
      }
    }
  }
  if (m.subject !== undefined) descriptors.push({ ...descriptor(m.subject, 'manifest', 'subject'), subject: true });
  return { mediaType, descriptors };
}

function guessMediaType(m: Json): string {
  if (Array.isArray(m.manifests)) return MT.ociIndex;
  if (m.schemaVersion === 1) return MT.dockerV1Signed;
  return MT.ociManifest;
}
