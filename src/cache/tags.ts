// listTags: upstream's list (all pages), cached for the tag TTL, paginated here with n/last since many upstreams ignore them.
import { LRUCache } from 'lru-cache';
import { OciError } from '../oci/errors.js';
import type { Metadata } from '../store/metadata.js';
import type { UpstreamSender } from '../upstream/chain.js';
import { header, readCapped } from '../upstream/client.js';
import type { Target } from '../upstream/registries.js';
import { Coalescer } from './coalesce.js';
import { fromUnreachable, fromUpstreamStatus, isUpstreamFailure } from '../upstream/outcomes.js';

const MAX_PAGES = 100;
const MAX_PAGE_BYTES = 8 << 20;

export interface TagPage {
  tags: string[];
  next?: string;
}

export class Tags {
  private readonly lists: LRUCache<string, string[]>;
  private readonly fetches = new Coalescer<string[]>();

  constructor(private readonly deps: { client: UpstreamSender; meta: Metadata; tagTtlMs: number }) {
    this.lists = new LRUCache({ max: 1000, ttl: Math.max(deps.tagTtlMs, 1) });
  }

  /** All tags, sorted; `last` and `n` select one page; `next` is the last tag when more follow. */
  async list(target: Target, n: number | undefined, last: string | undefined): Promise<TagPage> {
    const all = await this.all(target);
    const from = last === undefined ? 0 : all.findIndex((t) => t > last);
    const rest = from < 0 ? [] : all.slice(from);
    if (n === undefined || rest.length <= n) return { tags: rest };
    const tags = rest.slice(0, n);
    return { tags, next: tags[tags.length - 1]! };
  }

  private async all(target: Target): Promise<string[]> {
    const key = `${target.upstream.name}|${target.repo}`;
    const cached = this.lists.get(key);
    if (cached) return cached;
    try {
      const { promise } = this.fetches.run(key, () => this.fetchAll(target));
      const tags = await promise;
      this.lists.set(key, tags);
      return tags;
    } catch (e) {
      const local = this.deps.meta.listTags(target.upstream.name, target.repo);
      if (isUpstreamFailure(e) && local.length > 0) return local;
      throw e instanceof OciError ? e : fromUnreachable(e, 'NAME_UNKNOWN', { repo: target.repo });
    }
  }

  private async fetchAll(target: Target): Promise<string[]> {
    const out = new Set<string>();
    let path = '/tags/list';
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.deps.client.send(target.upstream, target.repo, path, 'GET', { accept: 'application/json' });
      if (res.status !== 200) {
        await res.body.dump().catch(() => undefined);
        throw fromUpstreamStatus(res, 'NAME_UNKNOWN', { repo: target.repo });
      }
      const json = JSON.parse((await readCapped(res.body, MAX_PAGE_BYTES)).toString('utf8')) as { tags?: unknown };
      if (Array.isArray(json.tags)) for (const t of json.tags) if (typeof t === 'string') out.add(t);
      // Link: </v2/<name>/tags/list?last=x&n=y>; rel="next"
      const link = /<([^>]*\/tags\/list\?[^>]*)>\s*;\s*rel="?next"?/.exec(header(res.headers, 'link') ?? '');
      if (!link) break;
      path = `/tags/list${link[1]!.slice(link[1]!.indexOf('?'))}`;
    }
    return [...out].sort();
  }
}
