// Fetch-and-verify of one foreign blob: a body wrapper that caps and hashes, a resumable fill source, a pass-through handle.
import { PassThrough, pipeline, Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { BlobVerifier, DigestMismatchError, VerifyingStream } from '../oci/verify.js';
import { header, type UpstreamResponse } from '../upstream/client.js';
import type { SafeResponse } from '../upstream/safe-fetch.js';
import type { FillSource } from '../cache/blobs/fill-contract.js';
import type { BlobHandle, BlobOutcome } from '../cache/blobs/handle.js';

type Body = UpstreamResponse['body'];

/** What one URL did: served verified bytes, or failed (dropped, too many bytes, wrong digest). */
export type Verdict = { ok: true } | { ok: false; error: string; mismatch: boolean };

/**
 * Watches one logical download of a blob (first response plus Range resumes): caps it at the descriptor
 * size and hashes it. Independent of the fill's own check, so the URL that served wrong bytes is known.
 */
export class Verifier {
  private readonly bytes: BlobVerifier;

  constructor(
    readonly digest: Digest,
    readonly size: number,
    readonly report: (v: Verdict) => void,
  ) {
    this.bytes = new BlobVerifier(digest, size, 'the URL');
  }

  /** Bytes the consumer took so far. */
  get count(): number {
    return this.bytes.received;
  }

  /**
   * A plain async iterable over body (no read-ahead, so `count` is exactly what the consumer took). Throws
   * DigestMismatchError past the size or on a wrong digest, so the consumer never sees a clean end.
   */
  wrap(body: Body): Body {
    const v = this;
    const iterable = {
      async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
        let finished = false;
        try {
          for await (const chunk of body) {
            const buf = chunk as Buffer;
            v.check(() => v.bytes.update(buf));
            yield buf;
          }
          finished = true;
        } catch (e) {
          if (!(e instanceof DigestMismatchError))
            v.report({ ok: false, error: `connection dropped after ${v.count} of ${v.size} bytes: ${(e as Error).message}`, mismatch: false });
          throw e;
        } finally {
          if (!finished) body.destroy();
        }
        if (v.count === v.size) {
          v.check(() => v.bytes.finish());
          v.report({ ok: true });
        }
      },
      destroy: (err?: Error) => body.destroy(err),
      dump: () => body.dump(),
    };
    return iterable as unknown as Body;
  }

  /** Runs a check of the bytes; a mismatch is reported against the URL, then thrown. */
  private check(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.report({ ok: false, error: (e as Error).message, mismatch: true });
      throw e;
    }
  }

  fail(error: string): void {
    this.report({ ok: false, error, mismatch: false });
  }
}

/** A fill source for BlobFill: the first 200, and resumes from the same URL that must answer 206 at the offset. */
export function fillSource(first: SafeResponse, v: Verifier, refetch: (range: string) => Promise<SafeResponse>): FillSource {
  return {
    first: { ...first, body: v.wrap(first.body) },
    expectedSize: v.size,
    async resume(offset) {
      if (offset !== v.count) throw new Error(`resume at ${offset} but ${v.count} bytes were verified`);
      let res: SafeResponse;
      try {
        res = await refetch(`bytes=${offset}-`);
      } catch (e) {
        v.fail(`resume failed: ${(e as Error).message}`);
        throw e;
      }
      const cr = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
      if (res.status !== 206 || !cr || Number(cr[1]) !== offset) {
        res.body.destroy();
        v.fail(`answered a resume at byte ${offset} with ${res.status}`);
        throw new Error(`${first.url} cannot resume at byte ${offset} (answered ${res.status})`);
      }
      return { ...res, body: v.wrap(res.body) };
    },
  };
}

/** Bytes [start, end] of a verified read of the whole body (oci/verify's hold-back); the verdict goes to the URL's health. */
function verifiedRange(res: SafeResponse, v: Verifier, start: number, end: number): Readable {
  const out = new VerifyingStream(v.digest, v.size, { start, end }, 'the URL');
  pipeline(res.body, out, (err) => {
    if (!err) return v.report({ ok: true });
    // A body that ended (or dropped) early is the connection's fault, not wrong bytes.
    const short = out.received < v.size && !(err instanceof DigestMismatchError && /sent more/.test(err.message));
    const error = short ? `body ended after ${out.received} of ${v.size} bytes` : err.message;
    v.report({ ok: false, error, mismatch: !short && err instanceof DigestMismatchError });
  });
  return out;
}

const UNUSED_FIRST_MS = 30_000;

/**
 * `cache: false`: stream through without storing. Every open() reads (and verifies) the whole blob, since a
 * range alone cannot be checked against the digest; the first response is reused by the first open().
 */
export function passThroughHandle(size: number, first: SafeResponse, verifier: () => Verifier, refetch: () => Promise<SafeResponse>): BlobHandle {
  let unused: SafeResponse | undefined = first;
  // A handle whose open() never comes (e.g. the client's Range was invalid) must not pin a socket.
  const timer = setTimeout(() => {
    unused?.body.destroy();
    unused = undefined;
  }, UNUSED_FIRST_MS).unref();
  const release = (): void => {
    clearTimeout(timer);
    unused?.body.destroy();
    unused = undefined;
  };
  return {
    size,
    outcome: 'foreign-fetch' satisfies BlobOutcome,
    discard: release,
    open(start = 0, end = size - 1) {
      const res = unused;
      unused = undefined;
      clearTimeout(timer);
      const v = verifier();
      if (res) return verifiedRange(res, v, start, end);
      // The first response was used (or dropped): fetch again, then stream it the same way.
      const out = new PassThrough();
      refetch().then(
        (r) => pipeline(verifiedRange(r, v, start, end), out, () => undefined),
        (e: unknown) => out.destroy(e as Error),
      );
      return out;
    },
  };
}

/** The handle of a 302 answer: never opened. */
export function redirectHandle(size: number, url: string): BlobHandle {
  return {
    size,
    outcome: 'redirect',
    redirect: url,
    open: () => Readable.from([]),
  };
}
