// Blobs from the upstream registry: the GET that feeds a fill (continuing an interrupted download with Range) and
// the HEAD that confirms a repository holds a digest. Either answer links the digest to the repository.
import type { Logger } from 'pino';
import type { Digest } from '../../oci/digest.js';
import type { BlobStore } from '../../store/blob-store.js';
import type { Metadata } from '../../store/metadata.js';
import type { UpstreamSender } from '../../upstream/chain.js';
import type { Headers } from '../../upstream/client.js';
import { fromUnreachable, fromUpstreamStatus } from '../../upstream/outcomes.js';
import type { Target } from '../../upstream/registries.js';
import { bestEffort } from '../best-effort.js';
import { Coalescer } from '../coalesce.js';
import { FilledElsewhere } from './elsewhere.js';
import type { FillSource } from './fill-contract.js';

export type HeadResult = { status: number; headers: Headers };

export interface SourceDeps {
  client: UpstreamSender;
  store: BlobStore;
  meta: Metadata;
  log: Logger;
  /** Shared upstream rate limit (--upstream-rate): awaited before each chunk is written. */
  throttle?: (bytes: number) => Promise<void>;
}

export class UpstreamBlobs {
  private readonly confirming = new Coalescer<HeadResult>();

  constructor(private readonly deps: SourceDeps) {}

  private link(target: Target, digest: Digest): void {
    bestEffort(this.deps.log, 'link', () => this.deps.meta.link(target.upstream.name, target.repo, [digest]));
  }

  /**
   * GET from the upstream. With `resumable`, an interrupted earlier download of this digest (partial/) is
   * continued with Range instead of fetched again from the first byte. Throws FilledElsewhere when another live
   * process (worker, prefetch) is downloading it right now: follow that one instead of a second upstream GET.
   */
  async source(target: Target, digest: Digest, resumable = true): Promise<FillSource> {
    const what = { digest, repo: target.repo, upstream: target.upstream.name };
    const path = `/blobs/${digest}`;
    const get = (offset: number) => this.deps.client.send(target.upstream, target.repo, path, 'GET', offset > 0 ? { range: `bytes=${offset}-` } : {});
    // Other processes follow this download only for clients of the same upstream (holders, see service.ts).
    const claimed = resumable ? await this.deps.store.claimPartial(digest, target.upstream.name).catch(() => null) : null;
    if (claimed === undefined) throw new FilledElsewhere(digest);
    const partial = claimed ?? undefined;
    // Committed (row written) by another process since the caller looked: that one is a hit, not a download.
    if (partial && this.deps.meta.blobSize(digest) !== undefined) {
      await partial.abandon();
      throw new FilledElsewhere(digest);
    }
    let res;
    try {
      res = await get(partial?.size ?? 0);
      if (partial && partial.size > 0 && res.status !== 206) {
        // The upstream will not resume (or the partial is stale): start over from the first byte.
        await res.body.dump().catch(() => undefined);
        await partial.handle.truncate(0);
        partial.size = 0;
        res = await get(0);
      }
    } catch (e) {
      await partial?.abandon();
      throw fromUnreachable(e, 'BLOB_UNKNOWN', what);
    }
    if (res.status !== 200 && res.status !== 206) {
      await partial?.abandon();
      await res.body.dump().catch(() => undefined);
      throw fromUpstreamStatus(res, 'BLOB_UNKNOWN', what);
    }
    // Upstream just served it for this repository: that is proof enough for the link.
    this.link(target, digest);
    return {
      first: res,
      resume: get,
      holder: target.upstream.name,
      ...(partial ? { partial } : {}),
      ...(this.deps.throttle ? { throttle: this.deps.throttle } : {}),
    };
  }

  /** Upstream HEAD for this repository (coalesced); links the digest on 200, throws BLOB_UNKNOWN (or 429/403) otherwise. */
  async head(target: Target, digest: Digest): Promise<HeadResult> {
    const what = { digest, repo: target.repo, upstream: target.upstream.name };
    const key = `${target.upstream.name}|${target.repo}|${digest}`;
    const { promise } = this.confirming.run(key, async () => {
      const res = await this.deps.client.send(target.upstream, target.repo, `/blobs/${digest}`, 'HEAD');
      await res.body.dump().catch(() => undefined);
      return { status: res.status, headers: res.headers };
    });
    let res: HeadResult;
    try {
      res = await promise;
    } catch (e) {
      throw fromUnreachable(e, 'BLOB_UNKNOWN', { ...what, reason: 'cannot confirm this repository has the blob' });
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, 'BLOB_UNKNOWN', what);
    this.link(target, digest);
    return res;
  }
}
