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

/**
 * Splits an image ref `[host[:port]/]repo[:tag|@digest]` (as `docker pull` takes it) into the name a client
 * would put in the path and the reference; no tag means latest. Throws on anything invalid.
 */
export function parseImageRef(ref: string): { name: string; reference: Reference } {
  const at = ref.indexOf('@');
  let name = ref;
  let text = 'latest';
  if (at >= 0) {
    name = ref.slice(0, at);
    text = ref.slice(at + 1);
  } else {
    const colon = ref.lastIndexOf(':');
    // A colon before the last slash is a registry port (localhost:5000/app), not a tag.
    if (colon > ref.lastIndexOf('/')) {
      name = ref.slice(0, colon);
      text = ref.slice(colon + 1);
    }
  }
  const reference = parseReference(text);
  const slash = name.indexOf('/');
  const repo = slash > 0 && looksLikeHost(name.slice(0, slash)) ? name.slice(slash + 1) : name;
  if (!reference || !isValidName(repo)) throw new Error(`invalid image reference "${ref}"`);
  return { name, reference };
}
