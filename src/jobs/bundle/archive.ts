// Writes an export's OCI layout archive: small files, manifests, and every blob streamed from the CAS, re-hashed on
// the way; into <out>.partial-<pid>, fsynced, then renamed (a failed export leaves nothing at <out>).
import { createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { ManifestResult } from '../../cache/manifests.js';
import { Hasher, parseDigest, type Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { BlobStore } from '../../store/blob-store.js';
import { blobEntryName } from './layout.js';

/** An export that cannot be completed; the message names the ref or blob. Nothing is left at the output path. */
export class ExportError extends Error {}

type Sink = ReturnType<tar.Pack['entry']>;

export const partialOf = (out: string) => `${out}.partial-${process.pid}`;

/**
 * Streams the archive into `<out>.partial-<pid>`, then fsyncs and renames it: a failed export leaves nothing
 * at `out`. Every blob is read from an open handle (eviction cannot cut it) and re-hashed on the way.
 */
export async function writeArchive(
  store: BlobStore,
  out: string,
  mtime: Date,
  files: [string, Buffer][],
  manifests: ManifestResult[],
  blobs: Descriptor[],
): Promise<void> {
  const tmp = partialOf(out);
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(tmp, { highWaterMark: 1 << 20 }));
  written.catch(() => undefined);
  /** An entry whose errors surface through its callback (and the archive's), never as an unhandled 'error'. */
  const entry = (header: Parameters<tar.Pack['entry']>[0], body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      (body ? pack.entry(header, body, cb) : pack.entry(header, cb)).on('error', () => undefined);
    });
  try {
    for (const [name, body] of files) await entry({ name, size: body.length, mtime, mode: 0o644 }, body);
    const dirs = new Set(['blobs/', ...[...manifests.map((m) => m.digest), ...blobs.map((b) => b.digest)].map((d) => `blobs/${parseDigest(d)!.algorithm}/`)]);
    for (const name of dirs) await entry({ name, type: 'directory', mtime, mode: 0o755 });
    for (const m of manifests) await entry({ name: blobEntryName(m.digest), size: m.body.length, mtime, mode: 0o644 }, m.body);
    for (const b of blobs) await addBlob(store, pack, b.digest, b.size, mtime);
    pack.finalize();
    await written;
    const file = await fsp.open(tmp, 'r+');
    try {
      await file.sync();
    } finally {
      await file.close();
    }
    await fsp.rename(tmp, out);
  } catch (e) {
    pack.destroy(e as Error);
    await written.catch(() => undefined);
    throw e instanceof ExportError ? e : new ExportError(`${out}: ${(e as Error).message}`);
  }
}

async function addBlob(store: BlobStore, pack: tar.Pack, digest: Digest, size: number, mtime: Date): Promise<void> {
  const fh = await store.openHandle(digest);
  if (!fh) throw new ExportError(`blob ${digest} disappeared from the cache during the export (evicted?); run the export again`);
  try {
    let entry!: Sink;
    const entryDone = new Promise<void>((ok, fail) => {
      entry = pack.entry({ name: blobEntryName(digest), size, mtime, mode: 0o644 }, (err) => (err ? fail(err) : ok()));
    });
    entry.on('error', () => undefined);
    entryDone.catch(() => undefined);
    const h = new Hasher(parseDigest(digest)!.algorithm);
    let n = 0;
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      const buf = chunk as Buffer;
      n += buf.length;
      if (n > size) break;
      h.update(buf);
      if (!entry.write(buf)) await drained(entry);
    }
    const got = n === size ? h.digest() : undefined;
    if (got !== digest) {
      throw new ExportError(
        `cached blob ${digest} is corrupt (${got ? `hashes to ${got}` : `${n} bytes, expected ${size}`}); run \`stevedore verify --repair\` and export again`,
      );
    }
    entry.end(undefined);
    await entryDone;
  } finally {
    await fh.close();
  }
}

/** Waits for a tar entry to accept more bytes; rejects if the archive fails meanwhile (never waits forever). */
function drained(s: Sink): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      s.off('drain', onDrain);
      s.off('error', onError);
      s.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onError = (e: Error) => done(e);
    const onClose = () => done(new Error('the archive was closed'));
    s.on('drain', onDrain);
    s.on('error', onError);
    s.on('close', onClose);
  });
}
