// Scheduled cache warming inside serve: runs the prefetch engine per `warm:` entry on its schedule, never overlapping.
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Schedule, WarmEntry } from '../config/warm.js';
import type { PrefetchItem, PrefetchOptions, PrefetchSummary } from './prefetch-model.js';

/** When an entry runs next: `every` at start and then `ms` after each run started; `at` the next local time of day. */
export function nextRun(s: Schedule, now: number, lastStart?: number): number {
  if (s.kind === 'every') return lastStart === undefined ? now : Math.max(lastStart + s.ms, now);
  // A timer may fire a little early: never run the same time of day twice within a minute of the last start.
  const after = lastStart === undefined ? now : Math.max(now, lastStart + 60_000);
  let best = Infinity;
  for (const t of s.times) {
    const d = new Date(after);
    d.setHours(t.hour, t.minute, 0, 0);
    // setHours again after moving the date: the offset may differ across a DST change.
    if (d.getTime() <= after) {
      d.setDate(d.getDate() + 1);
      d.setHours(t.hour, t.minute, 0, 0);
    }
    best = Math.min(best, d.getTime());
  }
  return best;
}

export interface WarmCounters {
  warmRuns: Counter<'result'>;
  warmBytes: Counter;
  warmBlobs: Counter<'status'>;
}

export interface WarmerDeps {
  entries: readonly WarmEntry[];
  prefetch(items: PrefetchItem[], opts: PrefetchOptions): { done: Promise<PrefetchSummary> };
  log: Logger;
  metrics?: WarmCounters;
  now?: () => number;
}

// setTimeout's limit (~24.8 days); a longer wait re-arms when it fires.
const MAX_TIMER_MS = 2 ** 31 - 1;
const STOP_WAIT_MS = 5_000;

export class Warmer {
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly abort = new AbortController();
  /** Runs of all entries queue here, so two never compete for the line or overlap. */
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;
  private readonly now: () => number;
  /** Finished runs (for status and tests). */
  runs = 0;
  last: { entry: string; startedAt: number; summary: PrefetchSummary } | undefined;
  /** The last runs, newest first (status page). */
  readonly recent: { entry: string; startedAt: number; summary: PrefetchSummary }[] = [];

  constructor(private readonly deps: WarmerDeps) {
    this.now = deps.now ?? Date.now;
  }

  start(): void {
    for (let i = 0; i < this.deps.entries.length; i++) this.schedule(i, undefined);
  }

  /** Clears the timers and cancels a run in progress (bounded: serve's shutdown must not hang on it). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.abort.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.chain, new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS).unref()))]);
    clearTimeout(timer);
  }

  private schedule(i: number, lastStart: number | undefined): void {
    if (this.stopped) return;
    this.arm(i, nextRun(this.deps.entries[i]!.schedule, this.now(), lastStart));
  }

  private arm(i: number, due: number): void {
    const delay = Math.min(Math.max(0, due - this.now()), MAX_TIMER_MS);
    this.timers.set(
      i,
      setTimeout(() => {
        this.timers.delete(i);
        if (this.stopped) return;
        if (due - this.now() > 1000) this.arm(i, due);
        else void this.fire(i);
      }, delay).unref(),
    );
  }

  /** Queues one run of entry i; its next run is armed only after this one ended, so an entry never overlaps itself. */
  private async fire(i: number): Promise<void> {
    let startedAt = this.now();
    const run = this.chain.then(async () => {
      if (this.stopped) return;
      startedAt = this.now();
      await this.runOnce(this.deps.entries[i]!, startedAt);
    });
    this.chain = run.catch(() => undefined);
    await run.catch((e: unknown) => this.deps.log.error({ err: e, warm: this.deps.entries[i]!.name }, 'warm run crashed'));
    this.schedule(i, startedAt);
  }

  private async runOnce(e: WarmEntry, startedAt: number): Promise<void> {
    const { log, metrics } = this.deps;
    log.info({ warm: e.name, refs: e.refs }, 'warm run started');
    const items = e.refs.map((ref) => ({ ref, selection: e.selection }));
    const s = await this.deps.prefetch(items, { concurrency: e.concurrency, signal: this.abort.signal }).done;
    this.runs++;
    this.last = { entry: e.name, startedAt, summary: s };
    this.recent.unshift(this.last);
    this.recent.length = Math.min(this.recent.length, 10);
    metrics?.warmRuns.inc({ result: s.ok ? 'ok' : 'failed' });
    metrics?.warmBytes.inc(s.fetched.bytes);
    for (const status of ['fetched', 'cached', 'skipped'] as const) if (s[status].blobs > 0) metrics?.warmBlobs.inc({ status }, s[status].blobs);
    if (s.failed.blobs > 0) metrics?.warmBlobs.inc({ status: 'failed' }, s.failed.blobs);
    const line = {
      warm: e.name,
      seconds: s.seconds,
      images: s.images.map((m) => ({ ref: m.ref, digest: m.digest, ok: m.ok })),
      fetched: s.fetched,
      cached: s.cached,
      skipped: s.skipped,
      failed: s.failed,
    };
    if (s.ok) log.info(line, 'warm run finished');
    else log.warn(line, 'warm run finished with failures');
  }
}
