// Deterministic tar layers as temp files (a ustar writer, optionally gzipped), and the digest/size/diff_id of a layer file.
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { MT } from './media-types.ts';
import { makeTempDir, type TempDir } from './tmp.ts';

export type Compression = 'gzip' | 'zstd' | 'none';
export interface LayerFile {
  path: string;
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

// ---------- tar (ustar) writer with deterministic pseudo-random file content ----------

const MTIME = 1_700_000_000;
const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

function tarHeader(name: string, size: number, type: '0' | '5'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(type === '5' ? '0000755\0' : '0000644\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii'); // uid
  h.write('0000000\0', 116, 'ascii'); // gid
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'ascii');
  h.write(`${MTIME.toString(8).padStart(11, '0')}\0`, 136, 'ascii');
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** Yields a whole tar archive: one directory plus 1–3 files totalling sizeBytes of AES-CTR keystream bytes. */
function* tarChunks(seed: number, sizeBytes: number, variant: string): Generator<Buffer> {
  const dir = `stevedore-${variant}${seed}/`;
  yield tarHeader(dir, 0, '5');
  const nFiles = sizeBytes >= 3 * 4096 ? 3 : 1;
  const base = Math.floor(sizeBytes / nFiles);
  for (let i = 0; i < nFiles; i++) {
    const size = i === nFiles - 1 ? sizeBytes - base * (nFiles - 1) : base;
    yield tarHeader(`${dir}file-${i}.bin`, size, '0');
    const keyMat = createHash('sha256').update(`stevedore:${variant}:${seed}:${i}`).digest();
    const cipher = createCipheriv('aes-128-ctr', keyMat.subarray(0, 16), keyMat.subarray(16, 32));
    for (let left = size; left > 0; left -= CHUNK) yield cipher.update(ZEROS.subarray(0, Math.min(CHUNK, left)));
    if (size % 512 !== 0) yield Buffer.alloc(512 - (size % 512));
  }
  yield Buffer.alloc(1024);
}

let layerDir: TempDir | undefined;
const layerCache = new Map<string, Promise<LayerFile>>();

function hashTap(onChunk: (b: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onChunk(chunk);
      cb(null, chunk);
    },
  });
}

/**
 * Streams a real layer to a temp file (never held in memory) and returns its digest, size and diff_id.
 * 'zstd': Node 20 has no zstd encoder, so this is a *different* gzip stream (other content) labelled
 * application/vnd.oci.image.layer.v1.tar+zstd. Registries don't check compression, and containerd picks
 * the decompressor from magic bytes, so it still unpacks.
 */
export function makeLayerFile(seed: number, sizeBytes: number, compression: Compression = 'gzip'): Promise<LayerFile> {
  const key = `${seed}-${sizeBytes}-${compression}`;
  let p = layerCache.get(key);
  if (!p) {
    p = (async () => {
      layerDir ??= makeTempDir('stevedore-layers-');
      const file = path.join(layerDir.path, `layer-${key}.${compression === 'none' ? 'tar' : 'tgz'}`);
      const diff = createHash('sha256');
      const blob = createHash('sha256');
      let size = 0;
      const src = Readable.from(tarChunks(seed, sizeBytes, compression === 'zstd' ? 'z' : 'g'));
      const tapDiff = hashTap((b) => diff.update(b));
      const tapBlob = hashTap((b) => {
        blob.update(b);
        size += b.length;
      });
      const out = createWriteStream(file);
      if (compression === 'none') await pipeline(src, tapDiff, tapBlob, out);
      else await pipeline(src, tapDiff, createGzip({ level: 1 }), tapBlob, out);
      const diffId = `sha256:${diff.digest('hex')}`;
      const digest = compression === 'none' ? diffId : `sha256:${blob.digest('hex')}`;
      const mediaType = compression === 'none' ? MT.ociTar : compression === 'zstd' ? MT.ociZstd : MT.ociGzip;
      return { path: file, digest, size, mediaType, diffId };
    })();
    layerCache.set(key, p);
    p.catch(() => layerCache.delete(key));
  }
  return p;
}

/** Remove the temp dir holding built layer files (also removed automatically at exit). */
export async function cleanupLayerFiles(): Promise<void> {
  layerCache.clear();
  const d = layerDir;
  layerDir = undefined;
  await d?.cleanup();
}

/** digest, size and diff_id of an existing layer file (diff_id = sha256 of the gunzipped bytes when gzip). */
export async function describeFile(file: string): Promise<{ digest: string; size: number; diffId: string }> {
  const head = Buffer.alloc(2);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, 2, 0);
  } finally {
    closeSync(fd);
  }
  const blob = createHash('sha256');
  const diff = createHash('sha256');
  let size = 0;
  const sink = new Writable({
    write(_c, _e, cb) {
      cb();
    },
  });
  const tapBlob = hashTap((b) => {
    blob.update(b);
    size += b.length;
  });
  if (head[0] === 0x1f && head[1] === 0x8b)
    await pipeline(
      createReadStream(file),
      tapBlob,
      createGunzip(),
      hashTap((b) => diff.update(b)),
      sink,
    );
  else await pipeline(createReadStream(file), tapBlob, sink);
  const digest = `sha256:${blob.digest('hex')}`;
  return { digest, size, diffId: head[0] === 0x1f && head[1] === 0x8b ? `sha256:${diff.digest('hex')}` : digest };
}
