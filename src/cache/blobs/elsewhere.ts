// Following a fill that another process (another `--workers` worker, or a prefetch) runs on the same data dir:
// its growing partial/ file is read as it grows and passed through oci/verify's VerifyingStream, so this
// process sends bytes while the one upstream download runs, and the last byte only once they hashed right.
import { promises as fsp } from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import { VerifyingStream } from '../../oci/verify.js';
import type { BlobStore } from '../../store/blob-store.js';

const READ_CHUNK = 1 << 20;
/** How often the file is looked at again when it has not grown. */
const POLL_MS = 10;
/** No growth for this long while the other process still holds the lock: give up (the client sees a cut). */
const STALL_MS = 60_000;

/** Which upstream the live process holding `partial/<digest>`'s lock downloads from (undefined: none holds it). */
export async function holderElsewhere(store: BlobStore, digest: Digest): Promise<string | undefined> {
  return (await store.partialOwner(store.paths.partial(digest)))?.holder;
}

/** Another live process holds this digest's partial download: follow it instead of downloading it again. */
export class FilledElsewhere extends Error {
  override name = 'FilledElsewhere';
  constructor(readonly digest: Digest) {
    super(`${digest} is being downloaded by another process`);
  }
}

/**
 * The whole body of `digest` (`size` bytes) as the other process writes it: from its partial file (an open
 * descriptor keeps reading the same bytes after the rename into the CAS), or from the CAS file once committed.
 * Fails when the other process gave up (lock gone, file short) or stalls.
 */
function growingFile(store: BlobStore, digest: Digest, size: number): Readable {
  let fh: fsp.FileHandle | undefined;
  let pos = 0;
  let lastGrowth = Date.now();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const lockHeld = (): Promise<boolean> =>
    fsp.access(`${store.paths.partial(digest)}.lock`).then(
      () => true,
      () => false,
    );
  const openFile = async (): Promise<fsp.FileHandle> => {
    for (;;) {
      // The committed file first: it never changes; then the partial the other process writes.
      const held = await lockHeld();
      for (const p of [store.paths.blob(digest), store.paths.partial(digest)]) {
        const h = await fsp.open(p, 'r').catch(() => undefined);
        if (h) return h;
      }
      // No lock and no file: the other process gave up (or the blob was evicted) before we looked.
      if (!held || Date.now() - lastGrowth > STALL_MS) throw new Error(`no file for ${digest} from the other process`);
      await sleep(POLL_MS);
    }
  };
  return new Readable({
    highWaterMark: READ_CHUNK,
    async read() {
      try {
        fh ??= await openFile();
        for (;;) {
          if (pos >= size) return void this.push(null);
          const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - pos));
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead > 0) {
            pos += bytesRead;
            lastGrowth = Date.now();
            return void this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
          }
          // Nothing new: the other process is still writing, finished (then the read above had it all), or gave up.
          const held = await lockHeld();
          const grown = (await fh.stat()).size > pos;
          if (grown) continue;
          if (!held) throw new Error(`the other process stopped downloading ${digest} at ${pos} of ${size} bytes`);
          if (Date.now() - lastGrowth > STALL_MS) throw new Error(`the download of ${digest} by another process stalled at ${pos}`);
          await sleep(POLL_MS);
          if (this.destroyed) return;
        }
      } catch (e) {
        this.destroy(e as Error);
      }
    },
    destroy(err, cb) {
      const h = fh;
      fh = undefined;
      void h?.close().catch(() => undefined);
      cb(err);
    },
  });
}

/** Bytes [start, end] of a blob another process is downloading, verified as they pass (last byte held back). */
export function followElsewhere(store: BlobStore, digest: Digest, size: number, start = 0, end = size - 1): Readable {
  const out = new VerifyingStream(digest, size, { start, end }, 'another process');
  pipeline(growingFile(store, digest, size), out, () => undefined);
  return out;
}
