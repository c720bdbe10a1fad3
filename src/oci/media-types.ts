// Media type constants, the default Accept list, and the foreign / non-distributable layer test.
export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerV1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest, MT.dockerV1Signed, MT.dockerV1];

/** Sent upstream when the client sends no Accept (e.g. curl), so upstream does not fall back to schema1. */
export const DEFAULT_ACCEPT = MANIFEST_MEDIA_TYPES.join(', ');

/**
 * The Accept to send upstream for a client's Accept: absent or containing a wildcard (curl's default "*\/*")
 * means "anything", which registries read as "schema1 only" (distribution 2.8 converts or answers 400/404):
 * send the full list instead, so the client gets the manifest as stored.
 */
export function upstreamAccept(accept: string | undefined): string {
  if (!accept) return DEFAULT_ACCEPT;
  const wanted = accept.split(',').map((p) => baseMediaType(p));
  if (wanted.every((w) => w === '')) return DEFAULT_ACCEPT;
  return wanted.some((w) => w === '*/*' || w === 'application/*') ? DEFAULT_ACCEPT : accept;
}

export function isIndexType(mediaType: string): boolean {
  return mediaType === MT.ociIndex || mediaType === MT.dockerList;
}

/** Foreign (Docker) or non-distributable (OCI, deprecated but still in the wild) layer media types. */
export function isForeignMediaType(mediaType: string): boolean {
  return mediaType === MT.dockerForeignLayer || mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.v1.tar');
}

/** Strips parameters ("; charset=...") and lower-cases a Content-Type for comparison. */
export function baseMediaType(contentType: string | undefined | null): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Does an Accept header admit this media type? No Accept or a wildcard admits everything. */
export function accepts(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const wanted = accept.split(',').map((p) => baseMediaType(p));
  return wanted.some((w) => w === '*/*' || w === 'application/*' || w === mediaType);
}
