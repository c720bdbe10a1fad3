// Content-addressed blob files: stat, open for reading, temp files, verified commit (fsync + rename), delete.
import { randomUUID } from 'node:crypto';
import { chmodSync, constants, createReadStream, mkdirSync, promises as fsp, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { StorePaths } from './paths.js';

/** An exclusively claimed partial download: `size` bytes are already there. */
export interface PartialFile {
  path: string;
  handle: fsp.FileHandle;
  size: number;
  /** Drops the lock; the handle stays open for readers. */
  release(): Promise<void>;
  /** Drops the lock and closes the handle: for when no fill will use it. */
  abandon(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Modes for everything under the data dir (the umask can only take bits away from these). */
export const DIR_MODE = 0o700;
export const FILE_MODE = 0o600;

export class BlobStore {
  readonly paths: StorePaths;
  constructor(root: string) {
    this.paths = new StorePaths(root);
    // Owner-only whatever the umask (private images live here): 0700 dirs, 0600 files, also for an existing dir.
    mkdirSync(this.paths.blobsDir, { recursive: true, mode: DIR_MODE });
    try {
      chmodSync(root, DIR_MODE);
      mkdirSync(this.paths.tmpDir, { recursive: true, mode: DIR_MODE });
      mkdirSync(this.paths.partialDir, { recursive: true, mode: DIR_MODE });
    } catch {
      // A read-only data dir still serves what it holds; fills will pass through.
    }
  }

  /**
   * Drops temp files left by a crash (never served). Only `serve` calls this at startup: a CLI command on the
   * same data dir must not pull the temp files from under a running server's fills.
   */
  removeLeftovers(): void {
    try {
      rmSync(this.paths.tmpDir, { recursive: true, force: true });
      mkdirSync(this.paths.tmpDir, { recursive: true, mode: DIR_MODE });
    } catch {
      // read-only data dir
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

  /** Size of a committed blob's file, or undefined when it is not there (one stat: no descriptor opened). */
  async fileSize(digest: Digest): Promise<number | undefined> {
    try {
      return (await fsp.stat(this.paths.blob(digest))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** Streams [start, end] (inclusive) of a committed blob. */
  open(digest: Digest, start = 0, end?: number): Readable {
    return createReadStream(this.paths.blob(digest), { start, ...(end !== undefined ? { end } : {}), highWaterMark: 1 << 20 });
  }

  /**
   * Claims the partial download of a digest for this process (a lock file naming our pid; a lock left by a
   * dead process is taken over). undefined when another live process is downloading it right now.
   * `holder`: the upstream it is downloaded from, in the same lock file, so another process never sees the lock
   * without it (the file is complete before it appears: written aside, then hard-linked into place).
   */
  async claimPartial(digest: Digest, holder = ''): Promise<PartialFile | undefined> {
    const path = this.paths.partial(digest);
    const lock = `${path}.lock`;
    for (let attempt = 0; attempt < 2; attempt++) {
      // Ends in .lock so that partials() never takes it for a download.
      const aside = `${path}.${process.pid}.${randomUUID()}.lock`;
      try {
        await fsp.writeFile(aside, `${process.pid}\n${holder}`, { mode: FILE_MODE });
        await fsp.link(aside, lock);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        if (await this.partialOwner(path)) return undefined;
        await fsp.rm(lock, { force: true });
        continue;
      } finally {
        await fsp.rm(aside, { force: true });
      }
      const handle = await fsp.open(path, constants.O_RDWR | constants.O_CREAT, FILE_MODE);
      const size = (await handle.stat()).size;
      let released = false;
      const release = async (): Promise<void> => {
        if (released) return;
        released = true;
        await fsp.rm(lock, { force: true });
      };
      return {
        path,
        handle,
        size,
        release,
        abandon: async () => {
          await release();
          await handle.close().catch(() => undefined);
        },
      };
    }
    return undefined;
  }

  /**
   * Interrupted or running downloads in partial/, oldest first; `busy` when a live process holds the lock
   * (being written now: never removed under it).
   */
  async partials(): Promise<{ path: string; size: number; mtimeMs: number; busy: boolean }[]> {
    let names: string[];
    try {
      names = await fsp.readdir(this.paths.partialDir);
    } catch {
      return [];
    }
    const out: { path: string; size: number; mtimeMs: number; busy: boolean }[] = [];
    for (const name of names) {
      if (name.endsWith('.lock')) continue;
      const path = join(this.paths.partialDir, name);
      const st = await fsp.stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      out.push({ path, size: st.size, mtimeMs: st.mtimeMs, busy: (await this.partialOwner(path)) !== undefined });
    }
    return out.sort((a, b) => a.mtimeMs - b.mtimeMs);
  }

  /** Removes a partial download unless a live process claimed it meanwhile; returns whether it went. */
  async removePartial(path: string): Promise<boolean> {
    if (await this.partialOwner(path)) return false;
    await fsp.rm(path, { force: true });
    return true;
  }

  /**
   * The live process holding the lock of the partial download at `path` ("<pid>\n<holder>"), and the upstream it
   * downloads from; undefined when there is no lock or its process is gone.
   */
  async partialOwner(path: string): Promise<{ pid: number; holder: string } | undefined> {
    const text = await fsp.readFile(`${path}.lock`, 'utf8').catch(() => undefined);
    const [pidText = '', holder = ''] = text?.split('\n') ?? [];
    const pid = Number(pidText);
    return pid > 0 && alive(pid) ? { pid, holder } : undefined;
  }

  /** Bytes free for this process on the data dir's file system (undefined if it cannot be read). */
  async freeBytes(): Promise<number | undefined> {
    try {
      const fs = await fsp.statfs(this.paths.root);
      return fs.bavail * fs.bsize;
    } catch {
      return undefined;
    }
  }

  /** A new temp file opened read+write, for a fill. */
  async createTemp(): Promise<{ path: string; handle: fsp.FileHandle }> {
    const path = this.paths.tmp(randomUUID());
    return { path, handle: await fsp.open(path, 'w+', FILE_MODE) };
  }

  /** fsync the temp file, rename it to its digest's path, fsync the directory. Call only after verifying. */
  async commit(tempPath: string, handle: fsp.FileHandle, digest: Digest): Promise<void> {
    await handle.sync();
    const final = this.paths.blob(digest);
    await fsp.mkdir(dirname(final), { recursive: true, mode: DIR_MODE });
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
