// The prefetch engine: resolve refs, walk each image's selected DAG, fill missing blobs with bounded concurrency, report.
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { parseManifest } from '../oci/manifest.js';
import { isIndexType } from '../oci/media-types.js';
import { parseImageRef } from '../oci/reference.js';
import type { Target } from '../upstream/registries.js';
import { platformMatches, type Selection } from '../oci/platform.js';
import { walkImage } from './dag.js';
import { walkReferrers } from './referrers.js';
import {
  reasonOf,
  type BlobState,
  type ImageState,
  type PrefetchDeps,
  type PrefetchEvent,
  type PrefetchItem,
  type PrefetchOptions,
  type PrefetchSummary,
} from './prefetch-model.js';

/** At most `n` tasks at a time, started in the order asked. */
class Pool {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly n: number) {}
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.n) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

export class PrefetchRun {
  readonly images: ImageState[];
  readonly startedAt: number;
  readonly done: Promise<PrefetchSummary>;
  private readonly digests = new Map<Digest, { state: BlobState; done: Promise<void> }>();
  private readonly pool: Pool;
  private readonly now: () => number;
  private readonly streams = new Set<Readable>();
  /** Why an image that resolved still fails (a wanted platform is not in its index). */
  private readonly problems = new Map<ImageState, string>();

  constructor(
    private readonly deps: PrefetchDeps,
    items: PrefetchItem[],
    private readonly opts: PrefetchOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.pool = new Pool(Math.max(1, opts.concurrency));
    this.images = items.map((i) => ({ ref: i.ref, status: 'resolving', manifests: 0, manifestsFetched: 0, blobs: [] }));
    // A failed run on abort must not leave bytes flowing into a closing store.
    opts.signal?.addEventListener(
      'abort',
      () => {
        for (const s of this.streams) s.destroy(new Error('prefetch aborted'));
      },
      { once: true },
    );
    // Manifests are small: walking a few images at once hides latency without competing with blob bandwidth.
    const walks = new Pool(Math.min(4, Math.max(1, opts.concurrency)));
    // (walk() wraps its fills in an object: a returned promise would be adopted and hold the walk slot.)
    this.done = Promise.all(
      items.map((item, i) =>
        walks
          .run(() => this.walk(item, this.images[i]!))
          .then(({ fills }) => fills)
          .then(() => this.finish(this.images[i]!)),
      ),
    ).then(() => this.summary());
  }

  /** Unique blobs of the run so far: total, done (cached + fetched + failed/skipped sizes) and bytes fetched. */
  totals(): { bytes: number; doneBytes: number; fetchedBytes: number; blobs: number; blobsDone: number } {
    let bytes = 0,
      doneBytes = 0,
      fetchedBytes = 0,
      blobsDone = 0;
    for (const { state: b } of this.digests.values()) {
      bytes += b.size;
      if (b.status === 'fetching' || b.status === 'fetched' || b.status === 'interrupted') fetchedBytes += Math.max(0, b.bytes - b.resumed);
      if (b.status === 'fetching') doneBytes += b.bytes;
      else if (b.status !== 'pending') {
        doneBytes += b.size;
        blobsDone++;
      }
    }
    return { bytes, doneBytes, fetchedBytes, blobs: this.digests.size, blobsDone };
  }

  private emit(e: PrefetchEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // A broken progress display must not fail the fills.
    }
  }

  /** Resolves the image; returns a promise for its blob fills (started at once, throttled by the pool). */
  private async walk(item: PrefetchItem, img: ImageState): Promise<{ fills: Promise<void> }> {
    try {
      if (this.opts.signal?.aborted) throw new Error('prefetch aborted');
      const { name, reference } = parseImageRef(item.ref);
      const target = this.deps.resolve(name);
      Object.assign(img, { upstream: target.upstream.name, repo: target.repo, reference: reference.kind === 'tag' ? reference.tag : reference.digest });
      // A run asks what the tag means now (one HEAD when unchanged), whatever the tag TTL.
      const dag = await walkImage(this.deps.manifests, target, reference, item.selection, { revalidate: true });
      img.digest = dag.root.digest;
      img.manifests = dag.manifests.length;
      img.manifestsFetched = dag.manifests.filter((m) => m.outcome === 'miss' || m.outcome === 'coalesced').length;
      // Stale: the upstream could not say what the tag means now, so this run did not do its job.
      if (dag.root.outcome === 'stale') throw new Error(`upstream unreachable: could not revalidate the tag (cached ${dag.root.digest} kept)`);
      // The platforms that are there are still fetched; the image fails at the end, naming the missing ones.
      const missing = this.missingPlatforms(dag.root, item.selection);
      if (missing.length > 0)
        this.problems.set(img, `no manifest for platform ${missing.join(', ')} in the index; it has ${this.platformsOf(dag.root).join(', ') || 'none'}`);
      const blobs = new Map(dag.blobs.map((d) => [d.digest, d]));
      if (item.referrers && this.deps.referrers) {
        const sets = await walkReferrers(
          { manifests: this.deps.manifests, referrers: this.deps.referrers },
          target,
          dag.manifests.map((m) => m.digest),
        );
        img.referrers = sets.reduce((n, r) => n + r.artifacts, 0);
        img.manifests += sets.reduce((n, r) => n + r.dag.manifests.length, 0);
        for (const r of sets) for (const d of r.dag.blobs) blobs.set(d.digest, d);
      }
      img.blobs = [...blobs.values()].map((d) => this.blob(target, d.digest, d.size));
      img.status = 'fetching';
      this.emit({ type: 'image', image: img });
      const fills = Promise.all(img.blobs.map((b) => this.digests.get(b.digest)!.done.then(() => this.emit({ type: 'blob', image: img, blob: b }))));
      return { fills: fills.then(() => undefined) };
    } catch (e) {
      img.status = 'failed';
      img.reason = reasonOf(e);
      return { fills: Promise.resolve() };
    }
  }

  /** The platforms an index offers (attestation entries left out), as os/arch[/variant]. */
  private platformsOf(root: { body: Buffer; mediaType: string }): string[] {
    const out = new Set<string>();
    for (const e of parseManifest(root.body, root.mediaType).descriptors) {
      const p = e.platform;
      if (e.kind === 'manifest' && p && p.os !== 'unknown') out.add([p.os, p.architecture, p.variant].filter(Boolean).join('/'));
    }
    return [...out];
  }

  private missingPlatforms(root: { body: Buffer; mediaType: string }, sel: Selection): string[] {
    if (!sel.platforms || !isIndexType(root.mediaType)) return [];
    const entries = parseManifest(root.body, root.mediaType).descriptors;
    return sel.platforms
      .filter((p) => !entries.some((e) => e.kind === 'manifest' && platformMatches(p, e.platform)))
      .map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/'));
  }

  /** The run's one fill of a digest (images sharing a layer wait on the same one). */
  private blob(target: Target, digest: Digest, size: number): BlobState {
    const known = this.digests.get(digest);
    if (known) return known.state;
    const state: BlobState = { digest, size, status: 'pending', bytes: 0, resumed: 0 };
    const done = this.pool
      .run(() => this.fill(target, state))
      .catch((e: unknown) => {
        state.status = this.opts.signal?.aborted ? 'interrupted' : 'failed';
        state.reason = reasonOf(e);
      });
    this.digests.set(digest, { state, done });
    return state;
  }

  private async fill(target: Target, b: BlobState): Promise<void> {
    if (this.opts.signal?.aborted) throw new Error('prefetch aborted');
    const handle = await this.deps.blobs.get(target, b.digest);
    if (handle.outcome === 'hit') {
      // Already cached and linked: no upstream byte (the lookup also counts as an access for eviction).
      handle.discard?.();
      b.status = 'cached';
      return;
    }
    if (handle.redirect || handle.outcome === 'pass-through') {
      // Nothing this run could keep: a redirect is never stored, and an unwritable store only streams through.
      handle.discard?.();
      b.status = 'skipped';
      b.reason = handle.redirect ? 'foreign layer: the policy redirects clients to its URL; nothing to cache' : 'store unwritable: not cached';
      return;
    }
    b.status = 'fetching';
    b.resumed = handle.resumedFrom ?? 0;
    const stream = handle.open();
    this.streams.add(stream);
    try {
      // The fill belongs to the cache; draining a reader is what waits for its verified commit.
      for await (const chunk of stream) b.bytes += (chunk as Buffer).length;
    } finally {
      this.streams.delete(stream);
    }
    // A reader ends once the bytes are verified; the CAS commit follows: count the blob as fetched only after it.
    await this.deps.blobs.fillSettled(b.digest);
    if (!this.deps.isCached(b.digest)) {
      // A foreign rule with cache: false streams verified bytes without keeping them; anything else should be kept.
      if (handle.outcome !== 'foreign-fetch') throw new Error('verified, but the commit to the store failed (see the log)');
      b.status = 'skipped';
      b.reason = 'foreign layer verified but not kept (a fetch rule with cache: false, or the commit failed)';
      return;
    }
    b.status = 'fetched';
  }

  private finish(img: ImageState): void {
    if (img.status !== 'failed') {
      const bad = img.blobs.filter((b) => b.status === 'failed').length;
      const cut = img.blobs.filter((b) => b.status === 'interrupted').length;
      const problem = this.problems.get(img);
      img.status = bad > 0 || cut > 0 || problem ? 'failed' : 'done';
      if (img.status === 'failed')
        img.reason = [problem, bad > 0 ? `${bad} blob(s) failed` : undefined, cut > 0 ? `${cut} blob(s) interrupted` : undefined].filter(Boolean).join('; ');
    }
    this.emit({ type: 'image-done', image: img });
  }

  private summary(): PrefetchSummary {
    const s: PrefetchSummary = {
      ok: true,
      seconds: (this.now() - this.startedAt) / 1000,
      images: [],
      fetched: { blobs: 0, bytes: 0 },
      resumed: { blobs: 0, bytes: 0 },
      ...(this.opts.signal?.aborted ? { interrupted: { blobs: 0, bytes: 0 } } : {}),
      cached: { blobs: 0, bytes: 0 },
      skipped: { blobs: 0, bytes: 0 },
      failed: { images: 0, blobs: 0, reasons: [] },
    };
    for (const img of this.images) {
      s.images.push({ ref: img.ref, ...(img.digest ? { digest: img.digest } : {}), ok: img.status === 'done', ...(img.reason ? { reason: img.reason } : {}) });
      if (img.status !== 'failed') continue;
      s.failed.images++;
      // Blob failures are listed below, each once; here what failed the image itself.
      const own = this.problems.get(img) ?? (img.blobs.length === 0 ? img.reason : undefined);
      if (own) s.failed.reasons.push({ ref: img.ref, reason: own });
    }
    for (const { state: b } of this.digests.values()) {
      const owner = this.images.find((i) => i.blobs.includes(b))!;
      if (b.resumed > 0) add(s.resumed, b.resumed);
      if (b.status === 'fetched') add(s.fetched, b.bytes - b.resumed);
      else if (b.status === 'interrupted' && s.interrupted) add(s.interrupted, Math.max(0, b.bytes - b.resumed));
      else if (b.status === 'cached') add(s.cached, b.size);
      else if (b.status === 'skipped') add(s.skipped, b.size);
      else if (b.status !== 'interrupted') {
        s.failed.blobs++;
        s.failed.reasons.push({ ref: owner.ref, digest: b.digest, reason: b.reason ?? 'failed' });
      }
    }
    s.ok = s.failed.images === 0 && s.failed.blobs === 0 && !s.interrupted;
    return s;
  }
}

function add(c: { blobs: number; bytes: number }, bytes: number): void {
  c.blobs++;
  c.bytes += bytes;
}

/** Starts a run; `run.done` settles with the summary (it never rejects: failures are in the summary). */
export function prefetch(deps: PrefetchDeps, items: PrefetchItem[], opts: PrefetchOptions): PrefetchRun {
  return new PrefetchRun(deps, items, opts);
}
