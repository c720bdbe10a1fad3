// Startup reconciliation and integrity checks of the blob store against SQLite.
// A file reaches blobs/ only by rename after verification, so reconciliation trusts names and sizes (no re-hash);
// `verify` re-hashes everything on request.
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Hasher, parseDigest, type Algorithm, type Digest } from '../oci/digest.js';
import type { BlobStore } from './blob-store.js';
import type { Metadata } from './metadata.js';

async function* committedFiles(store: BlobStore): AsyncGenerator<{ digest: Digest; file: string }> {
  for (const alg of ['sha256', 'sha512'] as Algorithm[]) {
    const algDir = path.join(store.paths.blobsDir, alg);
    const prefixes = await fsp.readdir(algDir).catch(() => [] as string[]);
    for (const p of prefixes) {
      for (const name of await fsp.readdir(path.join(algDir, p)).catch(() => [] as string[])) {
        const d = parseDigest(`${alg}:${name}`);
        if (d && name.startsWith(p)) yield { digest: d.digest, file: path.join(algDir, p, name) };
      }
    }
  }
}

export interface ReconcileResult {
  rowsDropped: number;
  filesAdopted: number;
  strayFiles: number;
}

/** Rows whose file is gone are dropped; verified files without a row (crash after rename) are adopted. */
export async function reconcile(store: BlobStore, meta: Metadata): Promise<ReconcileResult> {
  const rows = new Map(
    meta.db
      .prepare<[], { digest: string; size: number }>('SELECT digest, size FROM blobs')
      .all()
      .map((r) => [r.digest, r.size]),
  );
  const result: ReconcileResult = { rowsDropped: 0, filesAdopted: 0, strayFiles: 0 };
  const seen = new Set<string>();
  for await (const { digest, file } of committedFiles(store)) {
    const st = await fsp.stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    seen.add(digest);
    const size = rows.get(digest);
    if (size === undefined) {
      meta.putBlob(digest, st.size);
      result.filesAdopted++;
    } else if (size !== st.size) {
      // Not what was committed: neither row nor file can be trusted.
      meta.deleteBlob(digest);
      await fsp.rm(file, { force: true });
      result.strayFiles++;
    }
  }
  for (const digest of rows.keys()) {
    if (!seen.has(digest)) {
      meta.deleteBlob(digest as Digest);
      result.rowsDropped++;
    }
  }
  return result;
}

export interface VerifyResult {
  checked: number;
  bytes: number;
  corrupt: { digest: Digest; got: string }[];
  repaired: boolean;
}

/** Re-hashes every committed blob; with repair, corrupt ones lose their row, then their file. */
export async function verifyStore(
  store: BlobStore,
  meta: Metadata,
  opts: {
    repair: boolean;
    onProgress?: (d: Digest, ok: boolean) => void;
    /** Awaited before each chunk is hashed (a background scrub's rate limit). */
    throttle?: (bytes: number) => Promise<void>;
    /** Stops between chunks (shutdown). */
    signal?: AbortSignal;
  },
): Promise<VerifyResult> {
  const result: VerifyResult = { checked: 0, bytes: 0, corrupt: [], repaired: opts.repair };
  for await (const { digest, file } of committedFiles(store)) {
    const h = new Hasher(parseDigest(digest)!.algorithm);
    try {
      for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
        if (opts.signal?.aborted) return result;
        await opts.throttle?.((chunk as Buffer).length);
        h.update(chunk as Buffer);
        result.bytes += (chunk as Buffer).length;
      }
    } catch (e) {
      // Evicted while being read: nothing to check.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    const got = h.digest();
    result.checked++;
    const ok = got === digest;
    opts.onProgress?.(digest, ok);
    if (ok) continue;
    result.corrupt.push({ digest, got });
    if (opts.repair) {
      meta.deleteBlob(digest);
      await fsp.rm(file, { force: true });
    }
  }
  return result;
}
