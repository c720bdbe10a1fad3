// listTags: upstream's list (all pages, bounded), cached for the tag TTL, paginated here with n/last since many upstreams ignore them.
import { LRUCache } from 'lru-cache';
import { OciError } from '../oci/errors.js';
import { isValidTag } from '../oci/reference.js';
import type { Metadata } from '../store/metadata.js';
import type { UpstreamSender } from '../upstream/chain.js';
import { header, readCapped, type UpstreamResponse } from '../upstream/client.js';
import type { Target } from '../upstream/registries.js';
import { Slots } from './slots.js';
import { fromUnreachable, fromUpstreamStatus, isUpstreamFailure, upstreamFault } from '../upstream/outcomes.js';

/**
 * Bounds on one upstream tag list, all its pages together; past one the answer is 502 (never a truncated list).
 * Real repositories stay far below them: Docker Hub's largest have tens of thousands of tags, ~30 bytes each as
 * JSON (a few MB in all); a tag is at most 128 characters, so 8 MiB holds 64,000 of the longest kind and ~300,000
 * typical ones (MAX_LIST_BYTES was one page's cap before, so an upstream that answers in one page sees no change).
 * A hostile upstream (100 pages of 8 MiB) used to be read whole into memory until the process died.
 */
export const MAX_LIST_BYTES = 8 << 20;
export const MAX_TAGS = 250_000;
/** An upstream that pages by 100 reaches 100,000 tags. */
export const MAX_PAGES = 1000;
/** Fetches running at once (more wait their turn): each may hold MAX_LIST_BYTES of pages and their tags. */
const MAX_FETCHES = 4;
const MAX_FETCHES_PER_UPSTREAM = 2;
/** Cached lists in all, by estimated heap size (characters plus a string's overhead per tag). */
const CACHE_BYTES = 64 << 20;
const heapSize = (tags: string[]): number => tags.reduce((n, t) => n + t.length + 32, 64);

export interface TagPage {
  tags: string[];
  next?: string;
}

/** One fetch of a list, shared by every caller that asked for it meanwhile. */
interface Flight {
  promise: Promise<string[]>;
  stop: AbortController;
  /** Callers still waiting (Infinity once one without a signal joined): at 0 the fetch stops. */
  interest: number;
}

/** The tags of one page: unusable JSON is the upstream's fault; "tags": null (distribution, no tags) is none. */
function tagsOf(body: Buffer, what: Record<string, unknown>): unknown[] {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw upstreamFault(502, what, 'upstream tag list is not valid JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw upstreamFault(502, what, 'upstream tag list is not a JSON object');
  const tags = (json as { tags?: unknown }).tags;
  if (tags === undefined || tags === null) return [];
  if (!Array.isArray(tags)) throw upstreamFault(502, what, 'upstream tag list: "tags" is not an array');
  return tags;
}

export class Tags {
  private readonly lists: LRUCache<string, string[]>;
  private readonly flights = new Map<string, Flight>();
  private readonly slots = new Slots(MAX_FETCHES, MAX_FETCHES_PER_UPSTREAM);
  private fetching = 0;

  constructor(private readonly deps: { client: UpstreamSender; meta: Metadata; tagTtlMs: number; cacheBytes?: number }) {
    this.lists = new LRUCache({ max: 1000, maxSize: deps.cacheBytes ?? CACHE_BYTES, sizeCalculation: heapSize, ttl: Math.max(deps.tagTtlMs, 1) });
  }

  /** Upstream fetches of lists running now (asking for pages, or waiting for their turn). */
  get running(): number {
    return this.fetching;
  }

  /**
   * All tags, sorted; `last` and `n` select one page; `next` is the last tag when more follow. `signal`: the
   * client's; once every client waiting for a fetch has gone, it stops.
   */
  async list(target: Target, n: number | undefined, last: string | undefined, signal?: AbortSignal): Promise<TagPage> {
    const all = await this.all(target, signal);
    const from = last === undefined ? 0 : all.findIndex((t) => t > last);
    const rest = from < 0 ? [] : all.slice(from);
    if (n === undefined || rest.length <= n) return { tags: rest };
    const tags = rest.slice(0, n);
    return { tags, next: tags[tags.length - 1]! };
  }

  private async all(target: Target, signal: AbortSignal | undefined): Promise<string[]> {
    const key = `${target.upstream.name}|${target.repo}`;
    const cached = this.lists.get(key);
    if (cached) return cached;
    try {
      return await this.join(key, target, signal);
    } catch (e) {
      const local = this.deps.meta.listTags(target.upstream.name, target.repo);
      if (isUpstreamFailure(e) && local.length > 0) return local;
      throw e instanceof OciError ? e : fromUnreachable(e, 'NAME_UNKNOWN', { repo: target.repo });
    }
  }

  /** Joins the fetch of `key` running, or starts one; a caller whose signal aborts stops counting. */
  private join(key: string, target: Target, signal: AbortSignal | undefined): Promise<string[]> {
    let flight = this.flights.get(key);
    if (!flight) {
      const f: Flight = { stop: new AbortController(), interest: 0, promise: Promise.resolve([]) };
      f.promise = this.fetchAll(target, f.stop.signal)
        .then((tags) => {
          this.lists.set(key, tags);
          return tags;
        })
        .finally(() => {
          if (this.flights.get(key) === f) this.flights.delete(key);
        });
      this.flights.set(key, f);
      flight = f;
    }
    const f = flight;
    const abandon = (): void => {
      // Nobody waits for it any more: a later caller starts afresh instead of joining a stopping fetch.
      if (this.flights.get(key) === f) this.flights.delete(key);
      f.stop.abort();
    };
    if (!signal) f.interest = Number.POSITIVE_INFINITY;
    else if (!signal.aborted) {
      f.interest++;
      const leave = (): void => {
        if (--f.interest <= 0) abandon();
      };
      signal.addEventListener('abort', leave, { once: true });
      const off = (): void => signal.removeEventListener('abort', leave);
      f.promise.then(off, off);
    }
    if (f.interest <= 0) abandon();
    return f.promise;
  }

  private async fetchAll(target: Target, stop: AbortSignal): Promise<string[]> {
    this.fetching++;
    try {
      const release = await this.slots.acquire(target.upstream.name);
      try {
        return await this.pages(target, stop);
      } finally {
        release();
      }
    } finally {
      this.fetching--;
    }
  }

  private async pages(target: Target, stop: AbortSignal): Promise<string[]> {
    const what = { repo: target.repo, upstream: target.upstream.name };
    const abandoned = (): OciError => new OciError('UNAVAILABLE', { ...what, reason: 'every client asking for this tag list left' });
    const out = new Set<string>();
    let bytes = 0;
    let path = '/tags/list';
    for (let page = 0; ; page++) {
      if (page >= MAX_PAGES) throw upstreamFault(502, what, `upstream tag list longer than ${MAX_PAGES} pages`);
      if (stop.aborted) throw abandoned();
      const res = await this.deps.client.send(target.upstream, target.repo, path, 'GET', { accept: 'application/json' });
      if (stop.aborted || res.status !== 200) {
        await res.body.dump().catch(() => undefined);
        if (stop.aborted) throw abandoned();
        throw fromUpstreamStatus(res, 'NAME_UNKNOWN', { repo: target.repo });
      }
      const body = await this.read(res, MAX_LIST_BYTES - bytes, stop, what, abandoned);
      bytes += body.length;
      for (const t of tagsOf(body, what)) if (typeof t === 'string' && isValidTag(t)) out.add(t);
      if (out.size > MAX_TAGS) throw upstreamFault(502, what, `upstream tag list longer than ${MAX_TAGS} tags`);
      // Link: </v2/<name>/tags/list?last=x&n=y>; rel="next"
      const link = /<([^>]*\/tags\/list\?[^>]*)>\s*;\s*rel="?next"?/.exec(header(res.headers, 'link') ?? '');
      if (!link) break;
      path = `/tags/list${link[1]!.slice(link[1]!.indexOf('?'))}`;
    }
    return [...out].sort();
  }

  /** One page's body, at most `max` bytes (what is left of MAX_LIST_BYTES); cut short when the fetch stops. */
  private async read(res: UpstreamResponse, max: number, stop: AbortSignal, what: Record<string, unknown>, abandoned: () => OciError): Promise<Buffer> {
    const cut = (): void => void res.body.destroy();
    stop.addEventListener('abort', cut, { once: true });
    try {
      return await readCapped(res.body, max);
    } catch (e) {
      if (e instanceof RangeError) throw upstreamFault(502, what, `upstream tag list larger than ${MAX_LIST_BYTES} bytes`);
      if (stop.aborted) throw abandoned();
      throw e;
    } finally {
      stop.removeEventListener('abort', cut);
    }
  }
}
