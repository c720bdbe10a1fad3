// The cache layer's face to http/: resolve a request's upstream, then blobs, manifests and tags.
import type { Blobs } from './blobs/service.js';
import type { Manifests } from './manifests.js';
import type { PassthroughGate } from './passthrough.js';
import type { Referrers } from './referrers.js';
import type { Tags } from './tags.js';
import type { Registries, Target } from '../upstream/registries.js';

export type { Target };
export type { BlobHandle, BlobOutcome } from './blobs/handle.js';
export type { ManifestResult, ManifestOutcome } from './manifests.js';
export type { ReferrersResult } from './referrers.js';

export interface Proxy {
  resolve(name: string, ns: string | undefined): Target;
  /** Passthrough upstreams: the target with the client's credentials, once the upstream confirmed access. */
  admit: PassthroughGate['admit'];
  blobs: Blobs;
  manifests: Manifests;
  tags: Tags;
  referrers: Referrers;
}

export function createProxy(registries: Registries, blobs: Blobs, manifests: Manifests, tags: Tags, gate: PassthroughGate, referrers: Referrers): Proxy {
  return { resolve: (name, ns) => registries.resolve(name, ns), admit: (...a) => gate.admit(...a), blobs, manifests, tags, referrers };
}
