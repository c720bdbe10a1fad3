// Referrers lists, cached like a tag: the upstream's referrers API, else its referrers tag, else the empty index.
import type { Logger } from 'pino';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { MANIFEST_MAX_BYTES, parseManifest } from '../oci/manifest.js';
import { MT } from '../oci/media-types.js';
import { EMPTY_REFERRERS, filterReferrers, isMediaType, referrersTag } from '../oci/referrers.js';
import type { ReferrersRow, ReferrersSource, ReferrersStore } from '../store/referrers.js';
import type { UpstreamSender } from '../upstream/chain.js';
import { header, readCapped, type Headers, type UpstreamResponse } from '../upstream/client.js';
import { fromUnreachable, fromUpstreamStatus, isUpstreamFailure, UpstreamNotFound, upstreamErrors, upstreamFault } from '../upstream/outcomes.js';
import type { Target } from '../upstream/registries.js';
import { bestEffort } from './best-effort.js';
import { Coalescer } from './coalesce.js';
import type { Manifests } from './manifests.js';

export type ReferrersOutcome = 'hit' | 'miss' | 'revalidated' | 'stale';

export interface ReferrersResult {
  /** An image index: the upstream's bytes, unless filtered here (then `filters` says so). */
  body: Buffer;
  source: ReferrersSource;
  /** OCI-Filters-Applied for this answer ('' when no filter was applied). */
  filters: string;
  outcome: ReferrersOutcome;
}

export interface ReferrersDeps {
  client: UpstreamSender;
  store: ReferrersStore;
  manifests: Manifests;
  log: Logger;
  tagTtlMs: number;
  now: () => number;
  offline?: boolean;
  onUpstreamBytes?: (n: number) => void;
}

type Answer = Omit<ReferrersRow, 'checkedAt'>;

const MAX_PAGES = 16;

/** The query of a Link rel="next" to more of a referrers list (the path is ours to build: same repo, same subject). */
function nextPage(headers: Headers): string | undefined {
  const m = /<[^>?]*\/referrers\/[^>?]*\?([^>]*)>\s*;\s*rel="?next"?/.exec(header(headers, 'link') ?? '');
  return m ? m[1] : undefined;
}

/** An upstream answer that stale content may cover (unreachable, 5xx, 429), as opposed to a refusal. */
class Unavailable extends Error {}

/** The upstream answered something unusable (502: invalid, oversized, refused): a cached list covers it too. */
const isFault = (e: unknown): boolean => e instanceof OciError && e.status === 502;

/** One page of an upstream list: its bytes, the index, and the index's descriptors. */
interface Page {
  body: Buffer;
  index: Record<string, unknown>;
  manifests: unknown[];
}

export class Referrers {
  private readonly fetches = new Coalescer<Answer>();

  constructor(private readonly deps: ReferrersDeps) {}

  /** The referrers of `subject` in target's repository, filtered by `artifactType` when given. */
  async get(target: Target, subject: Digest, artifactType?: string): Promise<ReferrersResult> {
    const { store, now, tagTtlMs, log } = this.deps;
    const at = artifactType ?? '';
    // Nothing has an artifactType that is not a media type: answer without asking anyone.
    if (at !== '' && !isMediaType(at)) return { body: EMPTY_REFERRERS, source: 'empty', filters: 'artifactType', outcome: 'hit' };
    const up = target.upstream.name;
    const cached = store.get(up, target.repo, subject, at);
    if (cached && (this.deps.offline || now() - cached.checkedAt < tagTtlMs)) return { ...cached, outcome: 'hit' };
    let answer: Answer;
    try {
      const key = `${up}|${target.repo}|${subject}|${at}`;
      answer = await this.fetches.run(key, () => this.resolve(target, subject, at)).promise;
    } catch (e) {
      const failed = e instanceof Unavailable || isUpstreamFailure(e);
      if (cached && (failed || isFault(e))) {
        log.warn({ upstream: up, repo: target.repo, subject, reason: (e as Error).message }, 'serving stale referrers');
        return { ...cached, outcome: 'stale' };
      }
      if (failed && !cached) return this.local(target, subject, at, e as Error);
      throw e;
    }
    bestEffort(log, 'referrers', () => store.put(up, target.repo, subject, at, { ...answer, checkedAt: now() }));
    const same = cached?.body.equals(answer.body) && cached.filters === answer.filters;
    return { ...answer, outcome: same ? 'revalidated' : 'miss' };
  }

  /** Upstream unreachable and no list cached: a referrers tag this cache holds (imported, pulled before), or the error. */
  private async local(target: Target, subject: Digest, at: string, cause: Error): Promise<ReferrersResult> {
    try {
      const m = await this.deps.manifests.get(target, { kind: 'tag', tag: referrersTag(subject) }, MT.ociIndex);
      if (m.mediaType === MT.ociIndex) return { ...this.filtered(m.body, at, 'fallback-tag'), outcome: this.deps.offline ? 'hit' : 'stale' };
    } catch {
      // not cached either
    }
    throw fromUnreachable(cause, 'NAME_UNKNOWN', { repo: target.repo, subject, reason: `no referrers cached and ${cause.message}` });
  }

  private async resolve(target: Target, subject: Digest, at: string): Promise<Answer> {
    const what = { repo: target.repo, subject, upstream: target.upstream.name };
    const query = at ? `?artifactType=${encodeURIComponent(at)}` : '';
    let res;
    try {
      res = await this.deps.client.send(target.upstream, target.repo, `/referrers/${subject}${query}`, 'GET', { accept: MT.ociIndex });
    } catch (e) {
      throw isUpstreamFailure(e) ? new Unavailable((e as Error).message) : e;
    }
    if (res.status === 404) {
      // No referrers API here: the spec's fallback, the referrers tag schema.
      await res.body.dump().catch(() => undefined);
      return this.fallback(target, subject, at);
    }
    if (res.status >= 500 || res.status === 429) {
      await res.body.dump().catch(() => undefined);
      throw new Unavailable(`upstream answered ${res.status}`);
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, 'NAME_UNKNOWN', what, await upstreamErrors(res));
    const first = await this.readPage(res.body, what);
    let body = first.body;
    const applied = (header(res.headers, 'oci-filters-applied') ?? '')
      .split(',')
      .map((s) => s.trim())
      .includes('artifactType');
    const next = nextPage(res.headers);
    if (next !== undefined) body = await this.morePages(target, subject, first, next, what);
    if (at && applied) return { body, source: 'api', filters: 'artifactType' };
    return this.filtered(body, at, 'api');
  }

  /**
   * One page of a referrers answer: at most MANIFEST_MAX_BYTES, and an image index whose `manifests` is an array
   * (absent or null, as Go's nil slice marshals, is none); else the upstream's fault (502), and it is not served.
   */
  private async readPage(stream: UpstreamResponse['body'], what: Record<string, unknown>): Promise<Page> {
    let body: Buffer;
    try {
      body = await readCapped(stream, MANIFEST_MAX_BYTES);
    } catch (e) {
      if (e instanceof RangeError) throw upstreamFault(502, what, `upstream referrers list larger than ${MANIFEST_MAX_BYTES} bytes`);
      throw new Unavailable((e as Error).message);
    }
    this.deps.onUpstreamBytes?.(body.length);
    try {
      // parseManifest never changes the bytes; it throws MANIFEST_INVALID for what is not a valid document (JSON,
      // descriptors), but takes an index whose manifests is no array for an image manifest: checked here.
      if (parseManifest(body, MT.ociIndex).mediaType !== MT.ociIndex) throw new Error('not an image index');
      const index = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      const manifests = index.manifests ?? [];
      if (!Array.isArray(manifests)) throw new Error('"manifests" is not an array');
      return { body, index, manifests };
    } catch (e) {
      const why = e instanceof OciError && typeof e.detail === 'string' ? e.detail : (e as Error).message;
      throw upstreamFault(502, what, `upstream sent an invalid referrers list: ${why}`);
    }
  }

  /**
   * A list the upstream paginates (Link rel="next"): every page is fetched (at most MAX_PAGES, MANIFEST_MAX_BYTES in
   * all) and the descriptors merged into the first page's index, so a client never misses a signature on page 2.
   * The only case where the bytes served are not one upstream answer.
   */
  private async morePages(target: Target, subject: Digest, first: Page, query: string, what: Record<string, unknown>): Promise<Buffer> {
    const manifests = [...first.manifests];
    let total = first.body.length;
    for (let page = 1, next: string | undefined = query; next !== undefined; page++) {
      if (page >= MAX_PAGES) throw upstreamFault(502, what, `upstream referrers list longer than ${MAX_PAGES} pages`);
      let res: UpstreamResponse;
      try {
        res = await this.deps.client.send(target.upstream, target.repo, `/referrers/${subject}?${next}`, 'GET', { accept: MT.ociIndex });
      } catch (e) {
        throw isUpstreamFailure(e) ? new Unavailable((e as Error).message) : e;
      }
      if (res.status !== 200) {
        if (res.status >= 500 || res.status === 429 || res.status === 404) {
          await res.body.dump().catch(() => undefined);
          throw new Unavailable(`upstream answered ${res.status} for page ${page + 1} of the referrers list`);
        }
        throw fromUpstreamStatus(res, 'NAME_UNKNOWN', what, await upstreamErrors(res));
      }
      const more = await this.readPage(res.body, what);
      total += more.body.length;
      if (total > MANIFEST_MAX_BYTES) throw upstreamFault(502, what, `upstream referrers list larger than ${MANIFEST_MAX_BYTES} bytes`);
      for (const d of more.manifests) manifests.push(d);
      next = nextPage(res.headers);
    }
    return Buffer.from(JSON.stringify({ ...first.index, manifests }));
  }

  private async fallback(target: Target, subject: Digest, at: string): Promise<Answer> {
    try {
      const m = await this.deps.manifests.get(target, { kind: 'tag', tag: referrersTag(subject) }, MT.ociIndex);
      // The spec: a tag that is not a valid image index means no referrers.
      if (m.mediaType === MT.ociIndex) return this.filtered(m.body, at, 'fallback-tag');
    } catch (e) {
      if (e instanceof UpstreamNotFound) return { body: EMPTY_REFERRERS, source: 'empty', filters: at ? 'artifactType' : '' };
      // Unreachable or 5xx while asking for the tag (a 404 that is not the upstream's): stale content may cover it.
      if (isUpstreamFailure(e) || (e instanceof OciError && e.status === 404)) throw new Unavailable((e as Error).message);
      throw e;
    }
    return { body: EMPTY_REFERRERS, source: 'empty', filters: at ? 'artifactType' : '' };
  }

  /** The list as is, or filtered here by artifactType (then the header says a filter was applied). */
  private filtered(body: Buffer, at: string, source: ReferrersSource): Answer {
    if (!at) return { body, source, filters: '' };
    return { body: filterReferrers(body, at) ?? EMPTY_REFERRERS, source, filters: 'artifactType' };
  }
}
