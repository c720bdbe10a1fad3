// Every on-disk path of a data dir. Layout:
//   <data>/metadata.db            SQLite (WAL): blobs, links, manifests, tags
//   <data>/blobs/<alg>/<hex[0:2]>/<hex>   verified blob bytes, named by digest (content-addressed)
//   <data>/tmp/<uuid>             temp files; removed at startup (never served after a crash)
//   <data>/partial/<alg>-<hex>    a download in progress or interrupted, resumed with Range; never served
//                                 (its bytes are re-hashed before resuming and checked with the rest at the end)
import { join } from 'node:path';
import { parseDigest, type Digest } from '../oci/digest.js';

export class StorePaths {
  constructor(readonly root: string) {}
  get db(): string {
    return join(this.root, 'metadata.db');
  }
  get blobsDir(): string {
    return join(this.root, 'blobs');
  }
  get tmpDir(): string {
    return join(this.root, 'tmp');
  }
  blob(digest: Digest): string {
    const d = parseDigest(digest);
    if (!d) throw new Error(`not a digest: ${digest}`);
    return join(this.root, 'blobs', d.algorithm, d.hex.slice(0, 2), d.hex);
  }
  /** A blob's path below blobsDir (`sha256/ab/abcd…`, always with /): what nginx's /_cas/ location maps. */
  casPath(digest: Digest): string {
    const d = parseDigest(digest);
    if (!d) throw new Error(`not a digest: ${digest}`);
    return `${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`;
  }
  get partialDir(): string {
    return join(this.root, 'partial');
  }
  partial(digest: Digest): string {
    const d = parseDigest(digest);
    if (!d) throw new Error(`not a digest: ${digest}`);
    return join(this.root, 'partial', `${d.algorithm}-${d.hex}`);
  }
  tmp(id: string): string {
    return join(this.root, 'tmp', id);
  }
}
