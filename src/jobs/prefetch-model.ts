// What a prefetch run takes and reports: the items asked for, each blob's and image's state, the events a CLI
// renders, the final summary, the dependencies it runs on, and one line for a failure.
import type { Blobs } from '../cache/blobs/service.js';
import type { Manifests } from '../cache/manifests.js';
import type { Referrers } from '../cache/referrers.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { Selection } from '../oci/platform.js';
import type { Target } from '../upstream/registries.js';

export interface PrefetchItem {
  ref: string;
  selection: Selection;
  /** Also fetch the referrers (signatures, SBOMs) of the image's manifests, and their blobs. */
  referrers?: boolean;
}

export type BlobStatus = 'pending' | 'fetching' | 'fetched' | 'cached' | 'skipped' | 'failed' | 'interrupted';

/** One digest's state, shared by every image of the run that references it (fetched once). */
export interface BlobState {
  digest: Digest;
  size: number;
  status: BlobStatus;
  /** Bytes read so far, including `resumed`. */
  bytes: number;
  /** Bytes an earlier, interrupted download left on disk: read back, not fetched by this run. */
  resumed: number;
  reason?: string;
}

export interface ImageState {
  ref: string;
  upstream?: string;
  repo?: string;
  /** The tag or digest as given. */
  reference?: string;
  digest?: Digest;
  status: 'resolving' | 'fetching' | 'done' | 'failed';
  reason?: string;
  /** Manifests walked (root + selected children), and how many of them came from the upstream. */
  manifests: number;
  manifestsFetched: number;
  /** Artifacts listed as referrers of the image's manifests (with `referrers`). */
  referrers?: number;
  blobs: BlobState[];
}

export interface PrefetchSummary {
  ok: boolean;
  seconds: number;
  images: { ref: string; digest?: Digest; ok: boolean; reason?: string }[];
  /** Bytes this run actually downloaded (a resumed blob counts only what was missing). */
  fetched: { blobs: number; bytes: number };
  /** Blobs continued from an earlier interrupted run, and the bytes that run had already kept. */
  resumed: { blobs: number; bytes: number };
  /** Stopped by the signal (SIGINT): blobs cut short, and the bytes this run fetched of them (kept to resume). */
  interrupted?: { blobs: number; bytes: number };
  cached: { blobs: number; bytes: number };
  skipped: { blobs: number; bytes: number };
  failed: { images: number; blobs: number; reasons: { ref: string; digest?: Digest; reason: string }[] };
}

export type PrefetchEvent =
  | { type: 'image'; image: ImageState }
  | { type: 'blob'; image: ImageState; blob: BlobState }
  | { type: 'image-done'; image: ImageState };

export interface PrefetchOptions {
  concurrency: number;
  signal?: AbortSignal;
  onEvent?: (e: PrefetchEvent) => void;
  now?: () => number;
}

export interface PrefetchDeps {
  /** A client-style name (`[host/]repo`) to its upstream and repository (throws DENIED / NAME_INVALID). */
  resolve(name: string): Target;
  manifests: Manifests;
  blobs: Blobs;
  referrers?: Referrers;
  /** Whether the CAS holds the digest now (metadata row). */
  isCached(digest: Digest): boolean;
}

/** One line for a failure: the OCI code and what the detail says (upstream status, foreign policy, ...). */
export function reasonOf(e: unknown): string {
  if (e instanceof OciError) {
    const d = e.detail;
    const parts: string[] = [];
    if (typeof d === 'string') parts.push(d);
    else if (d && typeof d === 'object') {
      const o = d as Record<string, unknown>;
      if (typeof o.reason === 'string') parts.push(o.reason);
      if (typeof o.upstreamStatus === 'number') parts.push(`upstream answered ${o.upstreamStatus}`);
      if (typeof o.policy === 'string') parts.push(`policy ${o.policy}`);
      const tried = Array.isArray(o.tried) ? (o.tried[0] as { error?: unknown } | undefined) : undefined;
      if (typeof tried?.error === 'string') parts.push(tried.error);
    }
    return `${e.code}: ${e.message}${parts.length ? ` (${parts.join('; ')})` : ''}`;
  }
  return e instanceof Error ? e.message : String(e);
}
