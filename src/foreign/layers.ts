// Foreign / non-distributable layers: recorded from manifests; served by redirect or fetch-and-verify per the rules.
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { ForeignConfig } from '../config/foreign.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { ParsedManifest } from '../oci/manifest.js';
import type { ForeignStatus, ForeignStore, UrlHealth } from '../store/foreign.js';
import { FOREIGN_HOLDER } from '../store/metadata.js';
import { header } from '../upstream/client.js';
import type { Target } from '../upstream/registries.js';
import { FetchError, RefusedError, safeFetch, type SafeFetchOptions, type SafeResponse } from '../upstream/safe-fetch.js';
import type { FillDeps, FillSource } from '../cache/blobs/fill-contract.js';
import type { BlobHandle, BlobOutcome, FillStarter, ForeignDescriptor, ForeignHooks } from '../cache/blobs/handle.js';
import { fillSource, passThroughHandle, redirectHandle, Verifier, type Verdict } from './fetch.js';
import { expandMirror, type Decision, type ForeignPolicy } from './policy.js';

/** How foreign-layer requests were answered, counted since start (read by /metrics). */
export type ForeignOutcome = 'redirect' | 'fetch' | 'stream' | 'head' | 'denied' | 'unavailable' | 'mismatch' | 'recorded';

export interface Candidate {
  url: string;
  source: 'mirror' | 'prefix-mirror' | 'manifest';
  decision: Decision;
  health: UrlHealth;
}

export interface Tried {
  url: string;
  error: string;
  /** Refused by the rules or the address guard (the URL itself or a redirect hop): a policy outcome. */
  refused: boolean;
}

export interface ForeignDeps {
  store: ForeignStore;
  policy: ForeignPolicy;
  config: Pick<ForeignConfig, 'timeouts' | 'maxRedirects'>;
  log: Logger;
  now: () => number;
  /** For fills outside a request (`foreign fetch`): CAS, metadata, resumes. */
  fill: FillDeps;
  /** Air-gapped (config `offline`): foreign URLs are never fetched from; redirects and the cache still work. */
  offline?: boolean;
  /** DNS resolver override (tests). */
  resolve?: SafeFetchOptions['resolve'];
}

// Sorted: health reorders candidates, but only a different set of URLs (a mirror added) is new information.
const urlsKey = (cands: Candidate[]): string =>
  cands
    .map((c) => c.url)
    .sort()
    .join('\n');

/** A manifest may list many URLs: bound how many one request contacts, so a client never waits for them all. */
const MAX_CONTACTED = 4;

export const OFFLINE = (url: string): Tried => ({ url, error: 'not contacted: offline mode', refused: true });

export class ForeignLayers implements ForeignHooks {
  private readonly counters: Record<ForeignOutcome, number> = {
    redirect: 0,
    fetch: 0,
    stream: 0,
    head: 0,
    denied: 0,
    unavailable: 0,
    mismatch: 0,
    recorded: 0,
  };

  /**
   * The last GET failure per digest in this process, with the URL list it was computed from: a HEAD answers
   * the same while nothing changed, instead of promising a blob the GET cannot deliver.
   */
  private readonly lastFailure = new LRUCache<Digest, { urls: string; error: OciError }>({ max: 10_000 });

  constructor(readonly deps: ForeignDeps) {}

  /** Per-outcome counters since start. */
  stats(): Record<ForeignOutcome, number> {
    return { ...this.counters };
  }

  /** Manifests hook: records every foreign/non-distributable descriptor and every descriptor with urls. */
  readonly onManifest = (target: Target, _digest: Digest, parsed: ParsedManifest): void => {
    const found = parsed.descriptors.filter((d) => d.kind === 'blob' && d.size >= 0 && (d.foreign || d.urls.length > 0));
    if (found.length === 0) return;
    try {
      this.deps.store.record(
        target.upstream.name,
        target.repo,
        found.map((d) => ({ digest: d.digest, size: d.size, mediaType: d.mediaType, urls: d.urls, foreign: d.foreign })),
        this.deps.now(),
      );
      this.counters.recorded += found.length;
    } catch (e) {
      // Recording must never fail the manifest response it rides on.
      this.deps.log.warn({ err: (e as Error).message, repo: target.repo }, 'could not record foreign layers');
    }
  };

  /** Known for this repository only: a descriptor seen in another repository's manifest is not served here. */
  lookup(target: Target, digest: Digest): ForeignDescriptor | undefined {
    const row = this.deps.store.get(digest);
    if (!row || !this.deps.store.seenIn(digest, target.upstream.name, target.repo)) return undefined;
    return { size: row.size, mediaType: row.mediaType, urls: row.urls, foreign: row.foreign };
  }

  /** Operator mirrors (this digest's, then prefix templates), then the manifest's urls; unhealthy URLs last. */
  candidates(digest: Digest, manifestUrls: readonly string[]): Candidate[] {
    const { store, policy } = this.deps;
    const seen = new Set<string>();
    const out: Candidate[] = [];
    const add = (url: string, source: Candidate['source']): void => {
      if (seen.has(url)) return;
      seen.add(url);
      out.push({ url, source, decision: policy.decide(url), health: store.health(url) });
    };
    for (const u of store.mirrors(digest)) add(u, 'mirror');
    for (const t of store.mirrors('')) add(expandMirror(t, digest), 'prefix-mirror');
    for (const u of manifestUrls) add(u, 'manifest');
    // Array.prototype.sort is stable: order is kept within the healthy and the unhealthy group.
    return out.sort((a, b) => Number(a.health.failures > 0) - Number(b.health.failures > 0));
  }

  async resolve(target: Target, digest: Digest, d: ForeignDescriptor, fill: FillStarter | undefined): Promise<BlobHandle> {
    const cands = this.candidates(digest, d.urls);
    const tried: Tried[] = [];
    const where = { digest, upstream: target.upstream.name, repo: target.repo };
    for (const c of cands) {
      if (c.decision.action === 'deny') {
        tried.push({ url: c.url, error: c.decision.reason ?? 'denied', refused: true });
        continue;
      }
      if (c.decision.action === 'redirect') {
        this.settle(digest, 'redirectable', null);
        this.count('redirect', { ...where, url: c.url });
        // The parsed form: a raw manifest string may hold characters that are invalid in a header.
        return redirectHandle(d.size, new URL(c.url).href);
      }
      if (this.deps.offline) {
        tried.push(OFFLINE(c.url));
        continue;
      }
      if (tried.filter((t) => !t.refused).length >= MAX_CONTACTED) {
        tried.push({ url: c.url, error: `not tried: ${MAX_CONTACTED} URLs already failed for this request`, refused: false });
        continue;
      }
      try {
        if (!c.decision.cache || !fill) {
          const first = await this.get(c.url, d.size);
          this.count('stream', { ...where, url: c.url });
          return passThroughHandle(
            d.size,
            first,
            () => this.verifier(digest, d.size, c.url, false),
            () => this.get(c.url, d.size),
          );
        }
        const handle = await fill(() => this.source(c.url, digest, d.size));
        this.count('fetch', { ...where, url: c.url, outcome: handle.outcome });
        return handle;
      } catch (e) {
        tried.push(this.failed(c.url, e));
      }
    }
    throw this.unserved(where, d, cands, tried);
  }

  async stat(target: Target, digest: Digest, d: ForeignDescriptor): Promise<{ size: number; outcome: BlobOutcome }> {
    const cands = this.candidates(digest, d.urls);
    const failure = this.lastFailure.get(digest);
    if (failure && failure.urls === urlsKey(cands)) throw failure.error;
    const c = cands.find((x) => x.decision.action !== 'deny');
    if (!c) {
      const tried = cands.map((x) => ({ url: x.url, error: x.decision.reason ?? 'denied', refused: true }));
      throw this.unserved({ digest, upstream: target.upstream.name, repo: target.repo }, d, cands, tried);
    }
    this.counters.head++;
    return { size: d.size, outcome: c.decision.action === 'redirect' ? 'redirect' : 'foreign-fetch' };
  }

  /** GET url under the rules: a 200 whose Content-Length (if any) is the descriptor's size. */
  async get(url: string, size: number, range?: string): Promise<SafeResponse> {
    const res = await safeFetch(url, this.fetchOptions('GET', range));
    const ok = range ? res.status === 206 || res.status === 200 : res.status === 200;
    if (!ok) {
      await res.body.dump().catch(() => undefined);
      throw new FetchError(`answered ${res.status}`, res.url);
    }
    const cl = header(res.headers, 'content-length');
    if (!range && cl !== undefined && Number(cl) !== size) {
      res.body.destroy();
      throw new FetchError(`Content-Length ${cl} is not the descriptor's size ${size}`, res.url);
    }
    return res;
  }

  fetchOptions(method: 'GET' | 'HEAD', range?: string): SafeFetchOptions {
    const { policy, config, resolve } = this.deps;
    return {
      method,
      ...(range ? { range } : {}),
      // Every hop, not only the first URL: a redirect to a denied host is refused before it is contacted.
      authorize: (u) => {
        const d = policy.decide(u.href);
        return d.action === 'deny' ? { refused: d.reason ?? 'denied' } : { allowPrivate: d.allowPrivate };
      },
      timeouts: config.timeouts,
      maxRedirects: config.maxRedirects,
      ...(resolve ? { resolve } : {}),
    };
  }

  /** A fill source from url, its verdict recorded against the URL and the layer's status. */
  async source(url: string, digest: Digest, size: number): Promise<FillSource> {
    const first = await this.get(url, size);
    // Held by the foreign resolution, not by any registry: served only for descriptors recorded in a repository.
    return { ...fillSource(first, this.verifier(digest, size, url, true), (range) => this.get(url, size, range)), holder: FOREIGN_HOLDER };
  }

  verifier(digest: Digest, size: number, url: string, cache: boolean): Verifier {
    return new Verifier(digest, size, (v: Verdict) => {
      const { store, log, now } = this.deps;
      if (v.ok) {
        store.markSuccess(url, now());
        this.settle(digest, cache ? 'cached' : 'fetchable', null);
        log.info({ digest, url, cache }, 'foreign layer fetched and verified');
        return;
      }
      store.markFailure(url, v.error, now());
      this.settle(digest, 'unavailable', `${url}: ${v.error}`);
      if (v.mismatch) this.counters.mismatch++;
      log.warn({ digest, url, err: v.error }, v.mismatch ? 'foreign URL served wrong bytes; not stored, URL marked unhealthy' : 'foreign URL failed mid-body');
    });
  }

  /** Records a URL that failed before any byte was used; refusals are policy, not URL health. */
  failed(url: string, e: unknown): Tried {
    let error = (e as Error)?.message ?? String(e);
    const at = e instanceof RefusedError || e instanceof FetchError ? e.url : url;
    if (at !== url) error = `${error} (after a redirect to ${at})`;
    const refusedFirst = e instanceof RefusedError && at === url;
    // A URL that redirects somewhere refused is itself unhealthy; one refused outright is policy, not health.
    if (!refusedFirst) this.deps.store.markFailure(url, error, this.deps.now());
    return { url, error, refused: e instanceof RefusedError };
  }

  /** The clear error: what the layer is, its URLs, what was tried and why each failed; also status + log. */
  unserved(where: { digest: Digest; upstream: string; repo: string }, d: ForeignDescriptor, cands: Candidate[], tried: Tried[]): OciError {
    const allowed = cands.filter((c) => c.decision.action !== 'deny');
    const status: ForeignStatus = tried.length > 0 && tried.every((t) => t.refused) ? 'denied' : 'unavailable';
    const policy = cands.length === 0 ? 'no URLs: add a mirror' : allowed.length === 0 ? 'deny' : [...new Set(allowed.map((c) => c.decision.action))].join(',');
    const reason = d.foreign ? 'foreign layer' : 'layer not in the upstream registry, and its urls could not serve it';
    const detail = { reason, digest: where.digest, mediaType: d.mediaType, size: d.size, urls: cands.map((c) => c.url), tried, policy, status };
    this.settle(where.digest, status, tried.map((t) => `${t.url}: ${t.error}`).join('; ') || `no URL (${policy})`);
    this.count(status === 'denied' ? 'denied' : 'unavailable', { ...where, tried, policy });
    const error = new OciError('BLOB_UNKNOWN', detail);
    this.lastFailure.set(where.digest, { urls: urlsKey(cands), error });
    return error;
  }

  settle(digest: Digest, status: ForeignStatus, error: string | null): void {
    if (error === null) this.lastFailure.delete(digest);
    try {
      this.deps.store.setStatus(digest, status, error);
    } catch (e) {
      this.deps.log.warn({ digest, err: (e as Error).message }, 'could not record foreign layer status');
    }
  }

  private count(outcome: ForeignOutcome, fields: Record<string, unknown>): void {
    this.counters[outcome]++;
    const how = outcome === 'fetch' ? 'fetched' : outcome === 'stream' ? 'streamed' : outcome;
    const level = outcome === 'denied' || outcome === 'unavailable' ? 'warn' : 'info';
    this.deps.log[level]({ ...fields, foreign: how }, `foreign layer ${how}`);
  }
}
