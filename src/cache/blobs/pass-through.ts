// Pass-through for when the store cannot be written (read-only or full data dir): the upstream body goes to the
// client through oci/verify's VerifyingStream (the last byte held back until size and digest are verified).
import { pipeline } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import { VerifyingStream } from '../../oci/verify.js';
import { header } from '../../upstream/client.js';
import type { FillSource } from './fill-contract.js';
import type { BlobHandle } from './handle.js';

/**
 * Streams an upstream response to one client, verified (last byte held back), without caching it.
 * `onVerified` runs once the whole body checked out (the upstream proved it holds these bytes).
 */
export function passThroughHandle(source: FillSource, size: number | undefined, digest: Digest, onVerified?: () => void): BlobHandle {
  const cl = header(source.first.headers, 'content-length');
  const total = size ?? (cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined);
  return {
    size: total,
    outcome: 'pass-through',
    wholeOnly: true,
    open: () => {
      const out = new VerifyingStream(digest, total);
      pipeline(source.first.body, out, (err) => {
        if (!err) onVerified?.();
      });
      return out;
    },
    discard: () => source.first.body.destroy(),
  };
}
