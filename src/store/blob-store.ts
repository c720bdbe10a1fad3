// Content-addressed blob files: stat, open for reading, temp files, verified commit (fsync + rename), delete.
import { randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, promises as fsp, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { StorePaths } from './paths.js';

export class BlobStore {
  readonly paths: StorePaths;
  constructor(root: string) {
    this.paths = new StorePaths(root);
    mkdirSync(this.paths.blobsDir, { recursive: true });
    // Leftovers of fills interrupted by a crash are never served: drop them at startup.
    try {
      rmSync(this.paths.tmpDir, { recursive: true, force: true });
      mkdirSync(this.paths.tmpDir, { recursive: true });
    } catch {
      // A read-only data dir still serves what it holds; fills will pass through.
    }
  }

  /** Size of the committed file, or undefined when it is not on disk. */
  async size(digest: Digest): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.paths.blob(digest))).size;
    } catch {
      return undefined;
    }
  }

  /** Opens a committed blob; undefined when it is not on disk. An open handle survives eviction of the file. */
  async openHandle(digest: Digest): Promise<fsp.FileHandle | undefined> {
    try {
      return await fsp.open(this.paths.blob(digest), 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Streams [start, end] (inclusive) of a committed blob. */
  open(digest: Digest, start = 0, end?: number): Readable {
    return createReadStream(this.paths.blob(digest), { start, ...(end !== undefined ? { end } : {}), highWaterMark: 1 << 20 });
  }

  /** A new temp file opened read+write, for a fill. */
  async createTemp(): Promise<{ path: string; handle: fsp.FileHandle }> {
    const path = this.paths.tmp(randomUUID());
    return { path, handle: await fsp.open(path, 'w+') };
  }

  /** fsync the temp file, rename it to its digest's path, fsync the directory. Call only after verifying. */
  async commit(tempPath: string, handle: fsp.FileHandle, digest: Digest): Promise<void> {
    await handle.sync();
    const final = this.paths.blob(digest);
    await fsp.mkdir(dirname(final), { recursive: true });
    await fsp.rename(tempPath, final);
    const dir = await fsp.open(dirname(final), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  async removeTemp(tempPath: string): Promise<void> {
    await fsp.rm(tempPath, { force: true });
  }

  async delete(digest: Digest): Promise<void> {
    await fsp.rm(this.paths.blob(digest), { force: true });
  }
}
