// OCI 1.1 artifacts for tests: a cosign-style signature and an SBOM with a subject, and the referrers index a client
// pushes under the referrers tag schema (sha256-<hex>) when the registry has no referrers API.
import { pushBlob, pushManifest, sha256 } from './images.ts';
import { MT } from './media-types.ts';

export const COSIGN_SIG = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const SPDX = 'application/spdx+json';
export const EMPTY_CONFIG = { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256('{}'), size: 2 };

export interface Subject {
  digest: string;
  size: number;
  mediaType: string;
}

export interface Artifact {
  digest: string;
  bytes: Buffer;
  artifactType: string;
  blobs: { digest: string; bytes: Buffer }[];
  /** Its entry in a referrers index (artifactType and annotations copied, as the spec says). */
  descriptor: Record<string, unknown>;
}

function artifact(
  subject: Subject,
  artifactType: string,
  layerType: string,
  payload: Buffer,
  layerAnnotations: Record<string, string>,
  annotations: Record<string, string>,
): Artifact {
  const bytes = Buffer.from(
    `${JSON.stringify(
      {
        schemaVersion: 2,
        mediaType: MT.ociManifest,
        artifactType,
        config: EMPTY_CONFIG,
        layers: [{ mediaType: layerType, digest: sha256(payload), size: payload.length, annotations: layerAnnotations }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        annotations,
      },
      null,
      2,
    )}\n`,
  );
  return {
    digest: sha256(bytes),
    bytes,
    artifactType,
    blobs: [
      { digest: EMPTY_CONFIG.digest, bytes: Buffer.from('{}') },
      { digest: sha256(payload), bytes: payload },
    ],
    descriptor: { mediaType: MT.ociManifest, digest: sha256(bytes), size: bytes.length, artifactType, annotations },
  };
}

/** A signature as cosign writes it in OCI 1.1 mode: simplesigning payload, signature in a layer annotation. */
export function cosignSignature(subject: Subject, identity: string): Artifact {
  const payload = Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': identity }, image: { 'docker-manifest-digest': subject.digest }, type: 'cosign container image signature' },
      optional: null,
    }),
  );
  return artifact(
    subject,
    COSIGN_SIG,
    'application/vnd.dev.cosign.simplesigning.v1+json',
    payload,
    { 'dev.cosignproject.cosign/signature': Buffer.from(`sig-of-${subject.digest}`).toString('base64') },
    { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z' },
  );
}

export function sbom(subject: Subject): Artifact {
  const doc = Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: subject.digest, packages: [] }));
  return artifact(subject, SPDX, SPDX, doc, {}, { 'org.example.sbom.format': 'spdx' });
}

/** The referrers tag schema: <alg>-<hex> (truncated to 32 and 64 characters). */
export function referrersTag(digest: string): string {
  const [alg, hex] = digest.split(':') as [string, string];
  return `${alg.slice(0, 32)}-${hex.slice(0, 64)}`.replace(/[^a-zA-Z0-9._-]/g, '-');
}

export function referrersIndex(artifacts: Artifact[]): Buffer {
  return Buffer.from(`${JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: artifacts.map((a) => a.descriptor) }, null, 1)}\n`);
}

/** Pushes the artifacts by digest, then (as a client must on a registry without the API) their index under the referrers tag. */
export async function pushReferrers(registryUrl: string, repo: string, subject: Subject, artifacts: Artifact[]): Promise<Buffer> {
  for (const a of artifacts) {
    for (const b of a.blobs) await pushBlob(registryUrl, repo, b.digest, b.bytes);
    await pushManifest(registryUrl, repo, a.digest, a.bytes, MT.ociManifest);
  }
  const index = referrersIndex(artifacts);
  await pushManifest(registryUrl, repo, referrersTag(subject.digest), index, MT.ociIndex);
  return index;
}
