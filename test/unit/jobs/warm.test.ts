// Unit tests of src/jobs/warm.ts: next-run computation with an injected clock, and the warmer's run loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextRun, Warmer } from '../../../src/jobs/warm.ts';
import type { PrefetchOptions, PrefetchSummary } from '../../../src/jobs/prefetch-model.ts';
import { createLogger } from '../../../src/obs/log.ts';
import { Metrics } from '../../../src/obs/metrics.ts';
import type { Schedule, WarmEntry } from '../../../src/config/warm.ts';

const local = (y: number, mo: number, d: number, h: number, mi: number, s = 0, ms = 0): number => new Date(y, mo - 1, d, h, mi, s, ms).getTime();

test('every: at start, then the interval after each start; a run that overran starts the next at once', () => {
  const s = { kind: 'every', ms: 6 * 3600_000 } as const;
  const t0 = local(2024, 1, 15, 10, 0);
  assert.equal(nextRun(s, t0), t0, 'the first run is at start');
  assert.equal(nextRun(s, t0 + 5 * 60_000, t0), t0 + 6 * 3600_000);
  assert.equal(nextRun(s, t0 + 7 * 3600_000, t0), t0 + 7 * 3600_000, 'overran: next at once, never two at a time');
});

test('at: the next local time of day, tomorrow once it has passed, the earliest of several', () => {
  const nightly: Schedule = { kind: 'at', times: [{ hour: 2, minute: 0 }] };
  assert.equal(nextRun(nightly, local(2024, 1, 15, 1, 30)), local(2024, 1, 15, 2, 0));
  assert.equal(nextRun(nightly, local(2024, 1, 15, 2, 0, 0, 1)), local(2024, 1, 16, 2, 0));
  assert.equal(nextRun(nightly, local(2024, 1, 31, 23, 0)), local(2024, 2, 1, 2, 0), 'across a month end');
  // The timer fired a millisecond early and the run was quick: not again today.
  const early = local(2024, 1, 15, 1, 59, 59, 999);
  assert.equal(nextRun(nightly, early + 200, early), local(2024, 1, 16, 2, 0));
  const twice: Schedule = {
    kind: 'at',
    times: [
      { hour: 14, minute: 30 },
      { hour: 2, minute: 0 },
    ],
  };
  assert.equal(nextRun(twice, local(2024, 1, 15, 9, 0)), local(2024, 1, 15, 14, 30));
  assert.equal(nextRun(twice, local(2024, 1, 15, 15, 0)), local(2024, 1, 16, 2, 0));
});

const summary = (ok: boolean, bytes: number): PrefetchSummary => ({
  ok,
  seconds: 0.05,
  images: [{ ref: 'a:1', ok }],
  fetched: { blobs: bytes > 0 ? 2 : 0, bytes },
  resumed: { blobs: 0, bytes: 0 },
  cached: { blobs: 1, bytes: 10 },
  skipped: { blobs: 0, bytes: 0 },
  failed: { images: ok ? 0 : 1, blobs: 0, reasons: ok ? [] : [{ ref: 'a:1', reason: 'MANIFEST_UNKNOWN' }] },
});

test('the warmer: runs never overlap (one entry or several), metrics count them, stop() clears timers and cancels', async () => {
  const entry = (name: string, ms: number): WarmEntry => ({
    name,
    refs: ['a:1'],
    selection: { compression: 'gzip' },
    concurrency: 2,
    schedule: { kind: 'every', ms },
  });
  let active = 0;
  let maxActive = 0;
  const starts: { name: string; at: number }[] = [];
  let signal: AbortSignal | undefined;
  const metrics = new Metrics();
  const warmer = new Warmer({
    entries: [entry('fast', 20), entry('other', 20)],
    log: createLogger('silent'),
    metrics,
    prefetch: (items, opts: PrefetchOptions) => {
      signal = opts.signal;
      starts.push({ name: items[0]!.ref, at: performance.now() });
      active++;
      maxActive = Math.max(maxActive, active);
      // Each run takes longer than the interval.
      return {
        done: new Promise((r) =>
          setTimeout(() => {
            active--;
            r(summary(starts.length % 2 === 0, 100));
          }, 60),
        ),
      };
    },
  });
  warmer.start();
  const deadline = Date.now() + 5000;
  while (warmer.runs < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await warmer.stop();
  assert.ok(warmer.runs >= 6, `ran ${warmer.runs} times`);
  assert.equal(maxActive, 1, 'never two runs at once');
  for (let i = 1; i < starts.length; i++) assert.ok(starts[i]!.at - starts[i - 1]!.at >= 55, 'the next run waits for the previous one');
  assert.equal(signal?.aborted, true, 'stop() cancels a run in progress');
  const runsAfterStop = warmer.runs;
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(warmer.runs <= runsAfterStop + 1 && active === 0, 'no run starts after stop()');
  const text = await metrics.registry.metrics();
  const ok = Number(/stevedore_warm_runs_total\{result="ok"\} (\d+)/.exec(text)?.[1]);
  const failed = Number(/stevedore_warm_runs_total\{result="failed"\} (\d+)/.exec(text)?.[1]);
  assert.equal(ok + failed, warmer.runs);
  assert.ok(ok > 0 && failed > 0);
  assert.match(text, new RegExp(`stevedore_warm_bytes_total ${warmer.runs * 100}\\b`));
  assert.match(text, new RegExp(`stevedore_warm_blobs_total\\{status="fetched"\\} ${warmer.runs * 2}\\b`));
});
