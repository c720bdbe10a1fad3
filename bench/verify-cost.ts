// Bench stage 8: what verifying a hit while serving it would cost (README "Nothing unverified is served"). Reads the
// big blob's file the way a hit does (512 KiB reads into one reused buffer) with and without SHA-256 over the bytes,
// in this Node process, alternating runs; the hash is the only difference, so its cost is the time it adds.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { maxSeries, type Series } from './report.ts';

const CHUNK = 512 << 10;
const RUNS = 3;

export interface VerifyCost {
  bytes: number;
  /** MB/s reading the file (page cache), no hash */
  readOnly: Series;
  /** MB/s reading and hashing */
  readAndHash: Series;
  /** extra CPU ms per GB a verified hit would cost: hash time minus read time, from the medians */
  extraMsPerGB: number;
}

async function pass(file: string, hash: boolean): Promise<{ mbps: number; bytes: number }> {
  const fh = await open(file, 'r');
  const buf = Buffer.allocUnsafeSlow(CHUNK);
  const h = hash ? createHash('sha256') : undefined;
  let bytes = 0;
  const t = performance.now();
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, bytes);
      if (bytesRead === 0) break;
      h?.update(buf.subarray(0, bytesRead));
      bytes += bytesRead;
    }
    h?.digest();
  } finally {
    await fh.close();
  }
  return { mbps: bytes / 1e6 / ((performance.now() - t) / 1000), bytes };
}

export async function verifyCost(file: string): Promise<VerifyCost> {
  await pass(file, false); // fault the file into the page cache
  const read: number[] = [];
  const hashed: number[] = [];
  let bytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const a = await pass(file, false);
    const b = await pass(file, true);
    read.push(a.mbps);
    hashed.push(b.mbps);
    bytes = a.bytes;
  }
  const readOnly = maxSeries(read);
  const readAndHash = maxSeries(hashed);
  const extraMsPerGB = (1e3 / readAndHash.median - 1e3 / readOnly.median) * 1e3;
  return { bytes, readOnly, readAndHash, extraMsPerGB };
}
