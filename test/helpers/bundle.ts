// Reading what `stevedore export` wrote: the tar entries of a bundle and the shape of its stevedore-bundle.json.

export interface TarEntry {
  offset: number;
  size: number;
  type: string;
}

/** The entries of a ustar archive (names < 100 bytes, as stevedore writes them): where each body starts. */
export function tarEntries(buf: Buffer): Map<string, TarEntry> {
  const out = new Map<string, TarEntry>();
  const text = (a: number, b: number) => buf.subarray(a, b).toString('utf8').replace(/\0.*$/s, '');
  for (let off = 0; off + 512 <= buf.length; ) {
    if (buf.subarray(off, off + 512).every((b) => b === 0)) break;
    const prefix = text(off + 345, off + 500);
    const name = `${prefix ? `${prefix}/` : ''}${text(off, off + 100)}`;
    const size = parseInt(text(off + 124, off + 136).trim() || '0', 8);
    out.set(name, { offset: off + 512, size, type: text(off + 156, off + 157) });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

export const body = (buf: Buffer, e: TarEntry) => buf.subarray(e.offset, e.offset + e.size);
export const entryOf = (digest: string) => `blobs/sha256/${digest.slice(7)}`;
export interface BundleJson {
  format: string;
  stevedore: string;
  created: string;
  images: {
    ref: string;
    digest: string;
    mediaType: string;
    platforms: string[];
    manifests: number;
    blobs: number;
    bytes: number;
    foreignNotIncluded: string[];
  }[];
  totals: { images: number; manifests: number; blobs: number; bytes: number };
}
