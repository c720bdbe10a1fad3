// The contracts of a blob fill: where its bytes come from (FillSource), what it needs from the cache (FillDeps),
// and the two ways it stops that are not an upstream failure (store unwritable, cancelled for want of readers).
import type { Logger } from 'pino';
import type { PartialFile, BlobStore } from '../../store/blob-store.js';
import type { Metadata } from '../../store/metadata.js';
import type { UpstreamResponse } from '../../upstream/client.js';

/** Where a fill's bytes come from: the first response, and how to ask again from an offset after a drop. */
export interface FillSource {
  first: UpstreamResponse;
  resume(offset: number): Promise<UpstreamResponse>;
  /** The size the descriptor promised, when known; a Content-Length that disagrees fails the fill. */
  expectedSize?: number;
  /**
   * A claimed partial download to continue: its first `partial.size` bytes are kept (re-hashed, then checked with
   * the rest) and `first` must be the 206 answer starting there. On a network failure it is kept for next time.
   */
  partial?: PartialFile;
  /** Limits the upstream byte rate (shared by all fills). */
  throttle?: (bytes: number) => Promise<void>;
  /** Who delivers these bytes (an upstream name, or FOREIGN_HOLDER): recorded as a holder once they are committed. */
  holder?: string;
  /** With no size announced: the fill fails (OverBudgetError) past this many bytes (the storage budget, the free disk). */
  maxBytes?: number;
}

/** A blob of unannounced size grew past what the store may take: nothing of it is kept. */
export class OverBudgetError extends Error {
  override name = 'OverBudgetError';
}

/** The store could not take a new blob; `source` is untouched so the caller can stream it through instead. */
export class StoreUnwritableError extends Error {
  override name = 'StoreUnwritableError';
  /** Set by the one caller that streams `source` through; joined callers must fetch their own. */
  claimed = false;
  constructor(
    readonly reason: Error,
    readonly source: FillSource,
    readonly size: number | undefined,
  ) {
    super(`store unwritable: ${reason.message}`);
  }
}

export interface FillDeps {
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  /** How often a dropped upstream connection is resumed with Range before the fill fails. */
  maxResumes: number;
  onUpstreamBytes?: (n: number) => void;
  /**
   * A fill with no reader left for this long is cancelled (its partial kept for a Range resume). Prefetch and
   * warm runs read their fills, so a fill they own is never idle. Undefined: fills run to the end.
   */
  idleGraceMs?: number;
}

/** The fill was stopped because nobody read it any more (not an upstream failure: the partial is kept). */
export class FillCancelledError extends Error {
  override name = 'FillCancelledError';
}
