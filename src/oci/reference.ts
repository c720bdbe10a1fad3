// Repository name, tag and reference grammar from the OCI distribution-spec ("Pulling manifests").
import { parseDigest, type Digest } from './digest.js';

// <name>: path components of [a-z0-9]+ joined by separators, components joined by "/".
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
// Many clients limit the whole name to 255 characters (distribution's reference package does).
const NAME_MAX = 255;

export function isValidName(name: string): boolean {
  return name.length <= NAME_MAX && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: Digest };

/** Parses the <reference> of /v2/<name>/manifests/<reference>: a tag or a digest. */
export function parseReference(value: string): Reference | undefined {
  if (value.includes(':')) {
    const d = parseDigest(value);
    return d ? { kind: 'digest', digest: d.digest } : undefined;
  }
  return isValidTag(value) ? { kind: 'tag', tag: value } : undefined;
}

/** A first path component that names a registry host (Docker's rule: has "." or ":", or is "localhost"). */
export function looksLikeHost(component: string): boolean {
  return component === 'localhost' || component.includes('.') || component.includes(':');
}
