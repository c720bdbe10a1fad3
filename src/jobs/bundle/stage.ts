// Reading an import archive: each blob entry streamed through its hasher into tmp/ (skipped when the store already
// holds it), the layout's small files (oci-layout, index.json, stevedore-bundle.json) kept in memory, size-capped.
import { createReadStream, type promises as fsp } from 'node:fs';
import tar from 'tar-stream';
import { Hasher, parseDigest, type Digest } from '../../oci/digest.js';
import { MANIFEST_MAX_BYTES } from '../../oci/manifest.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { Metadata } from '../../store/metadata.js';
import { classifyEntry } from './layout.js';

export interface StageDeps {
  store: BlobStore;
  meta: Metadata;
}

/** A bundle that is refused; the message starts with the bad entry's name. Nothing was imported. */
export class ImportError extends Error {}

export interface Staged {
  digest: Digest;
  size: number;
  entry: string;
  /** New bytes waiting in tmp/ (closed: a bundle may hold thousands); absent when the store already has this digest. */
  temp?: string;
}

const SMALL_MAX: Record<string, number> = { layout: 64 << 10, index: MANIFEST_MAX_BYTES, bundle: MANIFEST_MAX_BYTES };

export async function readArchive(deps: StageDeps, file: string, staged: Map<Digest, Staged>, temps: string[]): Promise<Map<string, Buffer>> {
  const small = new Map<string, Buffer>();
  const extract = tar.extract();
  const src = createReadStream(file, { highWaterMark: 1 << 20 });
  let readError: Error | undefined;
  src.once('error', (e) => {
    readError = e;
    extract.destroy(e);
  });
  src.pipe(extract as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of extract) {
      const { name, type } = entry.header;
      const kind = classifyEntry(name);
      if (kind.kind === 'blob') {
        if (type !== 'file' && type !== 'contiguous-file') throw new ImportError(`${name}: a ${type} entry, not a regular file`);
        try {
          await stage(deps, entry, name, kind.digest, staged, temps);
        } catch (e) {
          // Our own disk (a full tmp/), not the archive, unless the archive itself failed mid-entry.
          if (e instanceof ImportError || !(e as NodeJS.ErrnoException).syscall) throw e;
          throw new ImportError(`${name}: cannot stage it in ${deps.store.paths.tmpDir} (${(e as Error).message})`);
        }
      } else if (kind.kind === 'layout' || kind.kind === 'index' || kind.kind === 'bundle') {
        const chunks: Buffer[] = [];
        let n = 0;
        for await (const c of entry) {
          n += (c as Buffer).length;
          if (n > SMALL_MAX[kind.kind]!) throw new ImportError(`${name}: larger than ${SMALL_MAX[kind.kind]} bytes`);
          chunks.push(c as Buffer);
        }
        small.set(kind.kind, Buffer.concat(chunks));
      } else {
        // Directories and anything else an archiver adds: not part of the layout, skipped.
        for await (const _ of entry) void _;
      }
    }
  } catch (e) {
    src.destroy();
    if (e instanceof ImportError) throw e;
    if (readError) throw new ImportError(`${file}: cannot read it (${readError.message})`);
    throw new ImportError(`${file}: not a readable tar archive (${(e as Error).message})`);
  }
  return small;
}

/** Streams one blob entry through its hasher into tmp/ (or nowhere, when the store already holds that digest). */
async function stage(
  deps: StageDeps,
  entry: AsyncIterable<unknown>,
  name: string,
  digest: Digest,
  staged: Map<Digest, Staged>,
  temps: string[],
): Promise<void> {
  const known = staged.has(digest) || (await inStore(deps, digest));
  const temp = known ? undefined : await deps.store.createTemp();
  if (temp) temps.push(temp.path);
  const h = new Hasher(parseDigest(digest)!.algorithm);
  let size = 0;
  try {
    for await (const c of entry) {
      const buf = c as Buffer;
      h.update(buf);
      size += buf.length;
      if (temp) await writeAll(temp.handle, buf);
    }
  } finally {
    await temp?.handle.close();
  }
  const got = h.digest();
  if (got !== digest) throw new ImportError(`${name}: content hashes to ${got}, not the digest its name says; the bundle is corrupt`);
  if (!staged.has(digest)) staged.set(digest, { digest, size, entry: name, ...(temp ? { temp: temp.path } : {}) });
}

async function writeAll(fh: fsp.FileHandle, buf: Buffer): Promise<void> {
  for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

async function inStore(deps: StageDeps, digest: Digest): Promise<boolean> {
  const row = deps.meta.blobSize(digest);
  if (row !== undefined && (await deps.store.size(digest)) === row) return true;
  return deps.meta.getManifest(digest) !== undefined;
}
