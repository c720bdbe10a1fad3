// The bundle format shared by export and import: an OCI image layout archive plus stevedore-bundle.json.
// Layout (image-spec "OCI Image Layout"): oci-layout, index.json (root descriptors named by
// org.opencontainers.image.ref.name), blobs/<alg>/<hex> for every manifest and blob.
import { readFileSync } from 'node:fs';
import { parseDigest, type Digest } from '../../oci/digest.js';
import { isValidName, isValidTag, looksLikeHost, parseReference, type Reference } from '../../oci/reference.js';

export const OCI_LAYOUT_FILE = 'oci-layout';
export const OCI_LAYOUT = { imageLayoutVersion: '1.0.0' } as const;
export const INDEX_FILE = 'index.json';
export const BUNDLE_FILE = 'stevedore-bundle.json';
/** The image-spec annotation naming a root; ours is always the full ref, host included. */
export const REF_NAME = 'org.opencontainers.image.ref.name';
/** containerd's `ctr export` keeps the full name here (and only the tag in REF_NAME). */
export const CONTAINERD_NAME = 'io.containerd.image.name';
export const BUNDLE_FORMAT = 'stevedore-bundle/v1';

/** stevedore-bundle.json: what is inside, for people and for tooling; import trusts only the digests. */
export interface BundleInfo {
  format: typeof BUNDLE_FORMAT;
  created: string;
  stevedore: string;
  selection: { platforms: string[] | 'all'; compression: string };
  images: BundleImage[];
  totals: { images: number; manifests: number; blobs: number; bytes: number };
}

export interface BundleImage {
  ref: string;
  digest: Digest;
  mediaType: string;
  /** os/arch[/variant] of the image manifests included (from the index, or the config of a single manifest). */
  platforms: string[];
  manifests: number;
  blobs: number;
  bytes: number;
  /** Foreign / non-distributable layers the manifests reference that were not cached, so are not inside. */
  foreignNotIncluded: Digest[];
}

export function blobEntryName(digest: Digest): string {
  const d = parseDigest(digest)!;
  return `blobs/${d.algorithm}/${d.hex}`;
}

export type EntryKind = { kind: 'blob'; digest: Digest } | { kind: 'layout' | 'index' | 'bundle' | 'directory' | 'other' };

/** Classifies a tar entry by name. The name is never used as a path on our disk: only its digest is. */
export function classifyEntry(rawName: string): EntryKind {
  const name = rawName.replace(/^(\.\/)+/, '').replace(/^\/+/, '');
  if (name === OCI_LAYOUT_FILE) return { kind: 'layout' };
  if (name === INDEX_FILE) return { kind: 'index' };
  if (name === BUNDLE_FILE) return { kind: 'bundle' };
  const m = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(name);
  if (m) {
    const d = parseDigest(`${m[1]}:${m[2]}`);
    if (d) return { kind: 'blob', digest: d.digest };
  }
  if (name === '' || name.endsWith('/')) return { kind: 'directory' };
  return { kind: 'other' };
}

/** `host/repo` + a tag or digest, as written into REF_NAME. */
export function formatRef(host: string, repo: string, reference: Reference): string {
  return reference.kind === 'tag' ? `${host}/${repo}:${reference.tag}` : `${host}/${repo}@${reference.digest}`;
}

/** A full reference: a registry host, a repository, and a tag or digest (or neither). */
export interface FullRef {
  name: string;
  tag?: string;
  digest?: Digest;
}

/** Parses `host/repo[:tag][@digest]` when it names a registry host; undefined otherwise. */
export function parseFullRef(value: string): FullRef | undefined {
  let rest = value;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const r = parseReference(rest.slice(at + 1));
    if (r?.kind !== 'digest') return undefined;
    digest = r.digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    if (!isValidTag(tag)) return undefined;
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  if (slash <= 0 || !looksLikeHost(rest.slice(0, slash)) || !isValidName(rest.slice(slash + 1))) return undefined;
  return { name: rest, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/**
 * Where a root of someone else's layout goes. Ours carry the full ref; skopeo's carry what its user typed after
 * `oci-archive:FILE:` (often just a tag, or nothing); containerd's carry the full name in CONTAINERD_NAME.
 * `--name host/repo[:tag]` supplies what is missing. Returns an error text when the destination is unknown.
 */
export function destinationOf(annotations: Record<string, string> | undefined, name: FullRef | undefined): FullRef | string {
  const refName = annotations?.[REF_NAME];
  for (const v of [refName, annotations?.[CONTAINERD_NAME]]) {
    const full = v !== undefined ? parseFullRef(v) : undefined;
    if (full) return full;
  }
  // Only a tag (skopeo's oci-archive:FILE:TAG), a short name, or no name at all: the repository must come from --name.
  let tag: string | undefined;
  if (refName !== undefined) {
    const colon = refName.lastIndexOf(':');
    tag = isValidTag(refName) ? refName : colon > refName.lastIndexOf('/') ? refName.slice(colon + 1) : undefined;
  }
  const what = refName === undefined ? 'has no ref name annotation' : `is named "${refName}", without a registry host`;
  if (!name) return `${what}; give the destination with --name host/repo[:tag] (e.g. --name docker.io/library/alpine)`;
  const t = name.tag ?? tag;
  return { name: name.name, ...(t !== undefined && isValidTag(t) ? { tag: t } : {}) };
}

let version: string | undefined;
/** Our package version (dist/jobs/bundle/ and src/jobs/bundle/ both sit three levels under package.json). */
export function stevedoreVersion(): string {
  if (version === undefined) {
    try {
      version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}
