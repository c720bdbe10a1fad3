// Operator actions on foreign layers (CLI and admin API): list, show, mirrors, probe URLs, pre-fill the cache.
import { BlobFill } from '../cache/blobs/fill.js';
import type { FillSource } from '../cache/blobs/fill-contract.js';
import type { Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import type { ForeignLayerRow, ForeignStatus } from '../store/foreign.js';

export { FOREIGN_STATUSES, isForeignStatus, type ForeignStatus } from '../store/foreign.js';
import { header } from '../upstream/client.js';
import { safeFetch } from '../upstream/safe-fetch.js';
import { OFFLINE, type Candidate, type ForeignLayers, type Tried } from './layers.js';
import { checkUrlShape, expandMirror } from './policy.js';

export interface CandidateView {
  url: string;
  source: Candidate['source'];
  action: string;
  rule: number;
  reason?: string;
  health: Candidate['health'];
}

export interface LayerView extends ForeignLayerRow {
  repos: { upstream: string; repo: string }[];
  candidates: CandidateView[];
}

export interface ProbeResult {
  url: string;
  action: string;
  ok: boolean;
  error?: string;
}

const view = (c: Candidate): CandidateView => ({
  url: c.url,
  source: c.source,
  action: c.decision.action,
  rule: c.decision.rule,
  ...(c.decision.reason ? { reason: c.decision.reason } : {}),
  health: c.health,
});

/** A URL that cannot serve as a mirror (wrong scheme, credentials in it, ...): exit 2 in the CLI, 400 in the admin API. */
export class InvalidMirrorError extends Error {
  override name = 'InvalidMirrorError';
}

export class ForeignAdmin {
  constructor(private readonly foreign: ForeignLayers) {}

  private get store() {
    return this.foreign.deps.store;
  }

  list(status?: ForeignStatus): ForeignLayerRow[] {
    return this.store.list(status);
  }

  show(digest: Digest): LayerView {
    const row = this.row(digest);
    return { ...row, repos: this.store.repos(digest), candidates: this.foreign.candidates(digest, row.urls).map(view) };
  }

  /** Prefix mirrors ("https://mirror.example/{digest}") serve every digest. */
  prefixMirrors(): string[] {
    return this.store.mirrors('');
  }

  /** Adds mirror URLs for one digest, or with digest '' prefix/template mirrors; returns those newly added. */
  addMirrors(digest: Digest | '', urls: string[]): string[] {
    for (const u of urls) {
      // Check the shape the URL will have when used (templates are expanded with a sample digest).
      const shaped = checkUrlShape(digest === '' ? expandMirror(u, `sha256:${'0'.repeat(64)}` as Digest) : u);
      if (typeof shaped === 'string') throw new InvalidMirrorError(`${u}: ${shaped}`);
    }
    const now = this.foreign.deps.now();
    return urls.filter((u) => this.store.addMirror(digest, u, now));
  }

  removeMirrors(digest: Digest | '', urls: string[]): string[] {
    return urls.filter((u) => this.store.removeMirror(digest, u));
  }

  /** Probes every allowed URL of one layer (or all) with HEAD and updates URL health and the layer's status. */
  async check(digest?: Digest): Promise<{ digest: Digest; status: ForeignStatus; urls: ProbeResult[] }[]> {
    const rows = digest ? [this.row(digest)] : this.store.list();
    const out = [];
    for (const row of rows) {
      const results: ProbeResult[] = [];
      for (const c of this.foreign.candidates(row.digest, row.urls)) {
        if (c.decision.action === 'deny') {
          results.push({ url: c.url, action: 'deny', ok: false, error: `not contacted: ${c.decision.reason ?? 'denied'}` });
          continue;
        }
        const error = this.foreign.deps.offline ? OFFLINE(c.url).error : await this.probe(c.url, row.size);
        if (error === undefined) this.store.markSuccess(c.url, this.foreign.deps.now());
        else if (!error.startsWith('refused') && !error.startsWith('not contacted')) this.store.markFailure(c.url, error, this.foreign.deps.now());
        results.push({ url: c.url, action: c.decision.action, ok: error === undefined, ...(error ? { error } : {}) });
      }
      const firstOk = results.find((r) => r.ok);
      const status: ForeignStatus =
        row.status === 'cached'
          ? 'cached'
          : firstOk
            ? firstOk.action === 'redirect'
              ? 'redirectable'
              : 'fetchable'
            : results.every((r) => r.action === 'deny' || r.error?.startsWith('refused') || r.error?.startsWith('not contacted'))
              ? 'denied'
              : 'unavailable';
      const errors = results
        .filter((r) => !r.ok)
        .map((r) => `${r.url}: ${r.error}`)
        .join('; ');
      this.foreign.settle(row.digest, status, firstOk || status === 'cached' ? null : errors || 'no URLs');
      out.push({ digest: row.digest, status, urls: results });
    }
    return out;
  }

  /** HEAD (or a one-byte GET where HEAD is refused): undefined when the URL serves a blob of the right size. */
  private async probe(url: string, size: number): Promise<string | undefined> {
    try {
      let res = await safeFetch(url, this.foreign.fetchOptions('HEAD'));
      await res.body.dump().catch(() => undefined);
      if (res.status === 405 || res.status === 403 || res.status === 501) {
        res = await safeFetch(url, this.foreign.fetchOptions('GET', 'bytes=0-0'));
        await res.body.dump().catch(() => undefined);
      }
      if (res.status === 206) {
        const total = /\/(\d+)$/.exec(header(res.headers, 'content-range') ?? '')?.[1];
        return total === undefined || Number(total) === size ? undefined : `serves ${total} bytes, descriptor says ${size}`;
      }
      if (res.status !== 200) return `answered ${res.status}`;
      const cl = header(res.headers, 'content-length');
      return cl === undefined || Number(cl) === size ? undefined : `serves ${cl} bytes, descriptor says ${size}`;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /**
   * Downloads, verifies and stores one layer (for air-gapped sites). Any URL a rule allows is used, also
   * under `redirect` or `cache: false`: the operator asked for this copy explicitly.
   */
  async prefetch(digest: Digest): Promise<{ digest: Digest; status: 'cached'; url?: string; size: number }> {
    const row = this.row(digest);
    if (row.status === 'cached') return { digest, status: 'cached', size: row.size };
    const { fill: fillDeps } = this.foreign.deps;
    const cands = this.foreign.candidates(digest, row.urls);
    const tried: Tried[] = [];
    for (const c of cands) {
      if (c.decision.action === 'deny') {
        tried.push({ url: c.url, error: c.decision.reason ?? 'denied', refused: true });
        continue;
      }
      if (this.foreign.deps.offline) {
        tried.push(OFFLINE(c.url));
        continue;
      }
      let source: FillSource | undefined;
      try {
        source = await this.foreign.source(c.url, digest, row.size);
        const fill = await BlobFill.start(fillDeps, source, digest);
        source = undefined;
        await fill.settled;
        if (fill.state === 'done') return { digest, status: 'cached', url: c.url, size: row.size };
        tried.push({ url: c.url, error: fill.error?.message ?? 'fill failed', refused: false });
      } catch (e) {
        // A fill that never started leaves the response open (e.g. the store is unwritable): close it.
        source?.first.body.destroy();
        tried.push(this.foreign.failed(c.url, e));
      }
    }
    const where = { digest, upstream: '-', repo: '-' };
    throw this.foreign.unserved(where, { size: row.size, mediaType: row.mediaType, urls: row.urls, foreign: row.foreign }, cands, tried);
  }

  private row(digest: Digest): ForeignLayerRow {
    const row = this.store.get(digest);
    if (!row)
      throw new OciError('BLOB_UNKNOWN', {
        digest,
        reason: 'no manifest with this layer has passed through stevedore; pull the image (or its manifest) through it first',
      });
    return row;
  }
}
