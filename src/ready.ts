// What /readyz reports: the store's totals, whether a new blob can be cached now, free disk, each upstream's circuit.
import { constants, promises as fsp } from 'node:fs';
import type { Blobs } from './cache/blobs/service.js';
import type { BlobStore } from './store/blob-store.js';
import type { Metadata } from './store/metadata.js';
import type { CircuitBreaker } from './upstream/breaker.js';

export interface ReadyDeps {
  offline: boolean;
  meta: Metadata;
  store: BlobStore;
  blobs: Blobs;
  breaker: CircuitBreaker;
}

export async function readiness(d: ReadyDeps): Promise<{ ok: boolean; body: Record<string, unknown> }> {
  const body: Record<string, unknown> = { offline: d.offline };
  let ok = true;
  try {
    body.store = d.meta.blobTotals();
  } catch (e) {
    ok = false;
    body.store = { error: (e as Error).message };
  }
  // Writable means a new blob can be cached now: the directory is writable and the last write was not refused
  // (a full disk keeps W_OK but refuses the bytes).
  const dirWritable = await fsp.access(d.store.paths.tmpDir, constants.W_OK).then(
    () => true,
    () => false,
  );
  const refusal = d.blobs.storeRefusal;
  body.cacheWritable = dirWritable && refusal === undefined;
  if (!body.cacheWritable) body.storeError = refusal ?? 'data directory is not writable';
  body.diskFreeBytes = await d.store.freeBytes();
  body.upstreams = d.breaker.snapshot();
  return { ok, body };
}
