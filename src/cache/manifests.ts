// getManifest: immutable by digest; by tag fresh within the TTL, then revalidated by HEAD, stale if upstream fails.
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { digestOf, parseDigest, type Digest } from '../oci/digest.js';
import { OciError } from '../oci/errors.js';
import { parseManifest, MANIFEST_MAX_BYTES, type ParsedManifest } from '../oci/manifest.js';
import { MT, accepts, baseMediaType, upstreamAccept } from '../oci/media-types.js';
import type { Reference } from '../oci/reference.js';
import type { Metadata, ManifestRow } from '../store/metadata.js';
import type { UpstreamSender } from '../upstream/chain.js';
import { header, readCapped } from '../upstream/client.js';
import type { Target } from '../upstream/registries.js';
import { bestEffort } from './best-effort.js';
import { Coalescer } from './coalesce.js';
import { fromUnreachable, fromUpstreamStatus, isUpstreamFailure, UpstreamNotFound, upstreamErrors, upstreamFault } from '../upstream/outcomes.js';

export type ManifestOutcome = 'hit' | 'miss' | 'revalidated' | 'stale' | 'coalesced';

export interface ManifestResult extends ManifestRow {
  outcome: ManifestOutcome;
}

export interface ManifestsDeps {
  client: UpstreamSender;
  meta: Metadata;
  log: Logger;
  tagTtlMs: number;
  now: () => number;
  /** Air-gapped: a cached tag is served whatever its age (the upstream is never asked). */
  offline?: boolean;
  onUpstreamBytes?: (n: number) => void;
  onAccess?: (digest: Digest) => void;
  /** Called with every verified manifest that passes through (foreign-layer recording). */
  onManifest?: (target: Target, digest: Digest, parsed: ParsedManifest) => void;
}

export class Manifests {
  // Hot manifests by digest; SQLite stays the truth.
  private readonly hot = new LRUCache<string, ManifestRow>({ maxSize: 64 << 20, sizeCalculation: (m) => m.body.length + 200 });
  private readonly fetches = new Coalescer<ManifestRow>();

  constructor(private readonly deps: ManifestsDeps) {}

  /** `revalidate`: ask the upstream what a tag means now (one HEAD when unchanged), whatever the tag TTL. */
  async get(target: Target, ref: Reference, accept: string | undefined, opts: { revalidate?: boolean } = {}): Promise<ManifestResult> {
    const r = ref.kind === 'digest' ? await this.byDigest(target, ref.digest, accept) : await this.byTag(target, ref.tag, accept, opts.revalidate === true);
    this.deps.onAccess?.(r.digest);
    return r;
  }

  /** Drops an evicted manifest from the in-memory cache. */
  forget(digest: Digest): void {
    this.hot.delete(digest);
  }

  private row(digest: Digest): ManifestRow | undefined {
    let m = this.hot.get(digest);
    if (!m) {
      m = this.deps.meta.getManifest(digest);
      if (m) this.hot.set(digest, m);
    }
    return m;
  }

  private async byDigest(target: Target, digest: Digest, accept: string | undefined): Promise<ManifestResult> {
    const cached = this.row(digest);
    // Served from cache only when this upstream delivered it (no other upstream's copy) and linked it to this
    // repository (its own manifest of it, or its answer for it); otherwise it must deliver it again, verified.
    const { meta } = this.deps;
    if (cached && meta.isLinked(target.upstream.name, target.repo, digest) && meta.isHolder(target.upstream.name, digest)) return { ...cached, outcome: 'hit' };
    const { row, joined } = await this.fetch(target, digest, accept, digest);
    return { ...row, outcome: joined ? 'coalesced' : 'miss' };
  }

  private async byTag(target: Target, tag: string, accept: string | undefined, revalidate: boolean): Promise<ManifestResult> {
    const { meta, now, tagTtlMs } = this.deps;
    const up = target.upstream.name;
    const mapping = meta.getTag(up, target.repo, tag);
    const cached = mapping ? this.row(mapping.digest) : undefined;
    const usable = cached && accepts(accept, cached.mediaType) ? cached : undefined;
    if (usable && (this.deps.offline || (!revalidate && now() - mapping!.checkedAt < tagTtlMs))) return { ...usable, outcome: 'hit' };
    if (usable) {
      // Past the TTL: a HEAD tells whether the tag moved (cheap; Docker Hub does not count HEADs).
      try {
        const res = await this.deps.client.send(target.upstream, target.repo, `/manifests/${tag}`, 'HEAD', { accept: upstreamAccept(accept) });
        await res.body.dump().catch(() => undefined);
        if (res.status === 200 && header(res.headers, 'docker-content-digest') === usable.digest) {
          bestEffort(this.deps.log, 'tag', () => meta.putTag(up, target.repo, tag, usable.digest));
          return { ...usable, outcome: 'revalidated' };
        }
        if (res.status === 404) {
          bestEffort(this.deps.log, 'tag', () => meta.deleteTag(up, target.repo, tag));
          throw fromUpstreamStatus(res, 'MANIFEST_UNKNOWN', { repo: target.repo, tag });
        }
        if (res.status >= 500 || res.status === 429) return this.stale(usable, target, tag, `upstream answered ${res.status}`);
      } catch (e) {
        if (isUpstreamFailure(e)) return this.stale(usable, target, tag, (e as Error).message);
        throw e;
      }
    }
    try {
      const { row, joined } = await this.fetch(target, tag, accept, undefined);
      // Only an answer to a full Accept list is what the tag means for every client.
      if (!accept || accepts(accept, MT.ociIndex) || accepts(accept, MT.dockerList))
        bestEffort(this.deps.log, 'tag', () => meta.putTag(up, target.repo, tag, row.digest));
      return { ...row, outcome: joined ? 'coalesced' : 'miss' };
    } catch (e) {
      if (usable && !(e instanceof UpstreamNotFound)) {
        return this.stale(usable, target, tag, (e as Error).message);
      }
      throw e;
    }
  }

  private stale(row: ManifestRow, target: Target, tag: string, reason: string): ManifestResult {
    this.deps.log.warn({ upstream: target.upstream.name, repo: target.repo, tag, reason }, 'serving stale manifest');
    return { ...row, outcome: 'stale' };
  }

  /** GET from upstream, coalesced per (repo, reference, accept); verified, stored and linked. */
  private async fetch(target: Target, reference: string, accept: string | undefined, expected: Digest | undefined) {
    const key = `${target.upstream.name}|${target.repo}|${reference}|${upstreamAccept(accept)}`;
    const { promise, joined } = this.fetches.run(key, () => this.fetchOnce(target, reference, accept, expected));
    return { row: await promise, joined };
  }

  private async fetchOnce(target: Target, reference: string, accept: string | undefined, expected: Digest | undefined): Promise<ManifestRow> {
    const what = { repo: target.repo, reference, upstream: target.upstream.name };
    let res;
    try {
      res = await this.deps.client.send(target.upstream, target.repo, `/manifests/${reference}`, 'GET', { accept: upstreamAccept(accept) });
    } catch (e) {
      throw fromUnreachable(e, 'MANIFEST_UNKNOWN', what);
    }
    if (res.status !== 200) throw fromUpstreamStatus(res, 'MANIFEST_UNKNOWN', what, await upstreamErrors(res));
    let body: Buffer;
    try {
      body = await readCapped(res.body, MANIFEST_MAX_BYTES);
    } catch (e) {
      if (e instanceof RangeError) throw upstreamFault(502, what, `upstream manifest larger than ${MANIFEST_MAX_BYTES} bytes`);
      throw fromUnreachable(e, 'MANIFEST_UNKNOWN', what);
    }
    this.deps.onUpstreamBytes?.(body.length);
    // Verify against the digest asked for, else against upstream's Docker-Content-Digest.
    const announced = header(res.headers, 'docker-content-digest');
    const want = expected ?? (announced ? parseDigest(announced)?.digest : undefined);
    const digest = digestOf(body, want ? parseDigest(want)!.algorithm : 'sha256');
    if (want && digest !== want) {
      this.deps.log.warn({ ...what, want, got: digest }, 'upstream manifest digest mismatch; not stored');
      // The upstream's fault, not a server unable to serve (502, not 503): it lied about the bytes or sent others.
      throw upstreamFault(502, { ...what, want, got: digest }, 'upstream sent a manifest whose digest does not match');
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(body, header(res.headers, 'content-type'));
    } catch (e) {
      // The client asked for nothing invalid: the upstream sent it (502), and it is never stored.
      const why = e instanceof OciError ? (typeof e.detail === 'string' ? e.detail : e.message) : (e as Error).message;
      this.deps.log.warn({ ...what, digest, err: why }, 'upstream sent an invalid manifest; not stored');
      throw upstreamFault(502, { ...what, digest }, `upstream sent an invalid manifest: ${why}`);
    }
    const mediaType = baseMediaType(header(res.headers, 'content-type')) || parsed.mediaType;
    const row: ManifestRow = { digest, mediaType: mediaType === 'application/json' ? parsed.mediaType : mediaType, body };
    bestEffort(this.deps.log, 'manifest', () => this.deps.meta.putManifest(target.upstream.name, target.repo, row, parsed.descriptors));
    this.hot.set(digest, row);
    this.deps.onManifest?.(target, digest, parsed);
    return row;
  }
}
