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
import { fromUnreachable, fromUpstreamStatus, isUpstreamFailure, UpstreamNotFound, upstreamErrors } from '../upstream/outcomes.js';
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
      if (cached && failed) {
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
    let body = await this.readPage(res.body, what);
    const applied = (header(res.headers, 'oci-filters-applied') ?? '')
      .split(',')
      .map((s) => s.trim())
      .includes('artifactType');
    const next = nextPage(res.headers);
    if (next !== undefined) body = await this.morePages(target, subject, body, next, what);
    if (at && applied) return { body, source: 'api', filters: 'artifactType' };
    return this.filtered(body, at, 'api');
  }

  /** One page of a referrers answer: at most MANIFEST_MAX_BYTES, and an image index, else it is not served. */
  private async readPage(stream: UpstreamResponse['body'], what: Record<string, unknown>): Promise<Buffer> {
    let body: Buffer;
    try {
      body = await readCapped(stream, MANIFEST_MAX_BYTES);
    } catch (e) {
      if (e instanceof RangeError) throw new OciError('MANIFEST_INVALID', { ...what, reason: `referrers list larger than ${MANIFEST_MAX_BYTES} bytes` });
      throw new Unavailable((e as Error).message);
    }
    this.deps.onUpstreamBytes?.(body.length);
    // parseManifest never changes the bytes; it throws MANIFEST_INVALID for what is not a valid document.
    if (parseManifest(body, MT.ociIndex).mediaType !== MT.ociIndex)
      throw new OciError('MANIFEST_INVALID', { ...what, reason: 'referrers answer is not an image index' });
    return body;
  }

  /**
   * A list the upstream paginates (Link rel="next"): every page is fetched (at most MAX_PAGES, MANIFEST_MAX_BYTES in
   * all) and the descriptors merged into the first page's index, so a client never misses a signature on page 2.
   * The only case where the bytes served are not one upstream answer.
   */
  private async morePages(target: Target, subject: Digest, first: Buffer, query: string, what: Record<string, unknown>): Promise<Buffer> {
    const index = JSON.parse(first.toString('utf8')) as { manifests: unknown[] };
    const manifests = [...index.manifests];
    let total = first.length;
    for (let page = 1, next: string | undefined = query; next !== undefined; page++) {
      if (page >= MAX_PAGES) throw new OciError('MANIFEST_INVALID', { ...what, reason: `referrers list longer than ${MAX_PAGES} pages` });
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
      const body = await this.readPage(res.body, what);
      total += body.length;
      if (total > MANIFEST_MAX_BYTES) throw new OciError('MANIFEST_INVALID', { ...what, reason: `referrers list larger than ${MANIFEST_MAX_BYTES} bytes` });
      manifests.push(...(JSON.parse(body.toString('utf8')) as { manifests: unknown[] }).manifests);
      next = nextPage(res.headers);
    }
    return Buffer.from(JSON.stringify({ ...index, manifests }));
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
