// `stevedore prefetch`: fill a data dir's cache with images (also while serve runs on it): progress, summary, exit code.
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { ConfigFlags } from '../config/load.js';
import type { Compression } from '../oci/platform.js';
import type { PrefetchRun } from '../jobs/prefetch.js';
import type { ImageState, PrefetchEvent, PrefetchSummary } from '../jobs/prefetch-model.js';
import { selectionOf } from '../config/warm.js';
import { humanBytes, seconds } from './format.js';
import { build, fail, imageRef, runCommand, upstreamFlags, UsageError } from './run.js';

interface PrefetchFlags extends ConfigFlags {
  from?: string;
  platform?: string[];
  allPlatforms?: boolean;
  compression: Compression;
  pin?: boolean;
  concurrency: string;
  rate?: string;
  json?: boolean;
  referrers?: boolean;
}

const usage = (msg: string): never => fail('prefetch', new UsageError(`prefetch: ${msg}`));

/** One ref per line; blank lines and # comments (whole line or after the ref) are ignored. "-" is stdin. */
export function readRefFile(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter(Boolean);
}

/** Bytes per second over the last few seconds (a whole-run average hides a stalled link). */
class RateMeter {
  private samples: { t: number; bytes: number }[] = [];
  rate(t: number, bytes: number): number {
    this.samples.push({ t, bytes });
    while (this.samples.length > 2 && t - this.samples[0]!.t > 5000) this.samples.shift();
    const first = this.samples[0]!;
    return t > first.t ? ((bytes - first.bytes) * 1000) / (t - first.t) : 0;
  }
}

function imageLine(img: ImageState, width: number): string {
  const name = img.ref.length > width ? `…${img.ref.slice(-(width - 1))}` : img.ref.padEnd(width);
  if (img.status === 'resolving') return `${name}  resolving`;
  if (img.status === 'failed' && img.blobs.length === 0) return `${name}  failed: ${img.reason}`;
  let total = 0,
    done = 0,
    n = 0;
  for (const b of img.blobs) {
    total += b.size;
    done += b.status === 'fetching' ? b.bytes : b.status === 'pending' ? 0 : b.size;
    if (b.status !== 'pending' && b.status !== 'fetching') n++;
  }
  const state = img.status === 'done' ? 'done' : img.status === 'failed' ? `failed: ${img.reason}` : `${n}/${img.blobs.length} blobs`;
  return `${name}  ${humanBytes(done).padStart(9)} / ${humanBytes(total).padEnd(9)} ${state}`;
}

/** Redraws a block of lines in place on a terminal: one per image (the busy ones first), then the total. */
function ttyProgress(run: PrefetchRun, out: NodeJS.WriteStream): () => void {
  const meter = new RateMeter();
  let drawn = 0;
  const width = Math.min(40, Math.max(...run.images.map((i) => i.ref.length)));
  const draw = (): void => {
    const t = run.totals();
    const rate = meter.rate(Date.now(), t.fetchedBytes);
    const busy = run.images.filter((i) => i.status === 'resolving' || i.status === 'fetching');
    const rest = run.images.filter((i) => !busy.includes(i));
    const shown = [...busy, ...rest].slice(0, Math.max(3, (out.rows > 0 ? out.rows : 24) - 4));
    const eta = rate > 0 && t.doneBytes < t.bytes ? `  ETA ${seconds((t.bytes - t.doneBytes) / rate)}` : '';
    const lines = [
      ...shown.map((i) => imageLine(i, width)),
      `total ${humanBytes(t.doneBytes)} / ${humanBytes(t.bytes)}  ${t.blobsDone}/${t.blobs} blobs  ${humanBytes(rate)}/s${eta}`,
    ];
    // A pseudo-terminal without a window size reports 0 columns.
    const cols = out.columns > 0 ? out.columns - 1 : 200;
    out.write(`${drawn > 0 ? `\x1b[${drawn}A` : ''}${lines.map((l) => `\x1b[2K${l.slice(0, cols)}\n`).join('')}`);
    drawn = lines.length;
  };
  const timer = setInterval(draw, 250);
  draw();
  return () => {
    clearInterval(timer);
    draw();
  };
}

/** JSON lines: every event as it happens, and the totals once a second. */
function jsonProgress(run: PrefetchRun, write: (o: object) => void): { onEvent: (e: PrefetchEvent) => void; stop: () => void } {
  const meter = new RateMeter();
  const tick = (): void => {
    const t = run.totals();
    const rate = meter.rate(Date.now(), t.fetchedBytes);
    write({
      event: 'progress',
      bytes: t.doneBytes,
      totalBytes: t.bytes,
      fetchedBytes: t.fetchedBytes,
      blobs: t.blobsDone,
      totalBlobs: t.blobs,
      rate: Math.round(rate),
      etaSeconds: rate > 0 ? Math.ceil((t.bytes - t.doneBytes) / rate) : null,
    });
  };
  const timer = setInterval(tick, 1000);
  return {
    onEvent(e) {
      const img = e.image;
      if (e.type === 'image')
        write({
          event: 'image',
          ref: img.ref,
          upstream: img.upstream,
          repo: img.repo,
          digest: img.digest,
          manifests: img.manifests,
          ...(img.referrers !== undefined ? { referrers: img.referrers } : {}),
          blobs: img.blobs.length,
          bytes: img.blobs.reduce((a, b) => a + b.size, 0),
        });
      else if (e.type === 'blob')
        write({
          event: 'blob',
          ref: img.ref,
          digest: e.blob.digest,
          size: e.blob.size,
          status: e.blob.status,
          bytes: e.blob.bytes,
          ...(e.blob.resumed ? { resumed: e.blob.resumed } : {}),
          ...(e.blob.reason ? { reason: e.blob.reason } : {}),
        });
      else write({ event: 'image-done', ref: img.ref, digest: img.digest, status: img.status, ...(img.reason ? { reason: img.reason } : {}) });
    },
    stop() {
      clearInterval(timer);
      tick();
    },
  };
}

function printSummary(s: PrefetchSummary): void {
  const resumed = s.resumed.blobs ? ` (${s.resumed.blobs} resumed: ${humanBytes(s.resumed.bytes)} were already on disk)` : '';
  const cut = s.interrupted ? `, interrupted ${s.interrupted.blobs} (${humanBytes(s.interrupted.bytes)} kept)` : '';
  console.log(
    `fetched ${s.fetched.blobs} blobs (${humanBytes(s.fetched.bytes)})${resumed}${cut}, already cached ${s.cached.blobs} (${humanBytes(s.cached.bytes)})` +
      `${s.skipped.blobs ? `, skipped ${s.skipped.blobs} (${humanBytes(s.skipped.bytes)})` : ''}, failed ${s.failed.blobs} blobs / ${s.failed.images} images in ${s.seconds.toFixed(1)}s`,
  );
  for (const r of s.failed.reasons) console.log(`failed: ${r.ref}${r.digest ? ` ${r.digest}` : ''}: ${r.reason}`);
}

export function registerPrefetchCommand(program: Command): void {
  upstreamFlags(
    program
      .command('prefetch')
      .argument('[ref...]', 'e.g. docker.io/library/alpine:3.20 ghcr.io/org/app@sha256:...')
      .description("fill the cache with images: the index, the selected platforms' manifests, configs and layers"),
  )
    .option('--from <file>', 'read refs from a file, one per line, # comments ("-" = stdin)')
    .addOption(
      new Option('--platform <os/arch[/variant],...>', "platforms to fetch (repeatable; default: this host's)").argParser((v: string, prev: string[] = []) => [
        ...prev,
        ...v
          .split(',')
          .map((p) => p.trim())
          .filter(Boolean),
      ]),
    )
    .option('--all-platforms', 'every platform in the index')
    .addOption(
      new Option('--compression <kind>', 'which variant of a platform: gzip, zstd (index entries marked zstd) or any')
        .choices(['gzip', 'zstd', 'any'])
        .default('gzip'),
    )
    .option('--referrers', "also fetch the referrers of each image's manifests (signatures, SBOMs) and their blobs")
    .option('--pin', 'pin each prefetched image (keep it out of eviction)')
    .option('--concurrency <n>', 'blobs downloaded at once', '4')
    .option('--rate <rate>', 'limit upstream bytes per second for this process, e.g. 20MB/s (as --upstream-rate)')
    .option('--json', 'JSON lines progress also on a terminal')
    .action(async (args: string[], flags: PrefetchFlags) => {
      let refs = [...args];
      if (flags.from) {
        try {
          refs.push(...readRefFile(readFileSync(flags.from === '-' ? 0 : flags.from, 'utf8')));
        } catch (e) {
          usage(`cannot read ${flags.from}: ${(e as Error).message}`);
        }
      }
      refs = [...new Set(refs)];
      if (refs.length === 0) usage('no image references (give REF... or --from FILE)');
      for (const ref of refs) imageRef('prefetch', ref);
      if (flags.allPlatforms && flags.platform) usage('--platform and --all-platforms exclude each other');
      const concurrency = Number(flags.concurrency);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) usage('--concurrency must be an integer from 1 to 64');
      let selection;
      try {
        selection = selectionOf(flags.allPlatforms ? 'all' : flags.platform, flags.compression);
      } catch (e) {
        usage((e as Error).message);
      }
      const config = build({ ...flags, ...(flags.rate !== undefined ? { upstreamRate: flags.rate } : {}) });
      const tty = process.stdout.isTTY && !flags.json;
      const write = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);
      await runCommand('prefetch', config, async (s) => {
        let json: ReturnType<typeof jsonProgress> | undefined;
        // Ctrl-C stops the downloads, keeps what reached the disk (partial/) and still prints the summary.
        const interrupt = new AbortController();
        const onSigint = (): void => interrupt.abort();
        process.once('SIGINT', onSigint);
        const run = s.prefetch(
          refs.map((ref) => ({ ref, selection: selection!, ...(flags.referrers ? { referrers: true } : {}) })),
          { concurrency, signal: interrupt.signal, onEvent: (e) => json?.onEvent(e) },
        );
        json = tty ? undefined : jsonProgress(run, write);
        const stopTty = tty ? ttyProgress(run, process.stdout) : undefined;
        const summary = await run.done;
        process.off('SIGINT', onSigint);
        stopTty?.();
        json?.stop();
        if (flags.pin) {
          for (const img of run.images) {
            // Only what is complete: a pin of an image missing layers would keep nothing worth keeping.
            if (img.status !== 'done' || !img.digest || !img.upstream || !img.repo || !img.reference) continue;
            s.usage.pin({ upstream: img.upstream, repo: img.repo, reference: img.reference, digest: img.digest }, Date.now());
            if (tty) console.log(`pinned ${img.upstream}/${img.repo}:${img.reference} -> ${img.digest}`);
            else write({ event: 'pin', ref: img.ref, upstream: img.upstream, repo: img.repo, reference: img.reference, digest: img.digest });
          }
        }
        if (tty) printSummary(summary);
        else write({ event: 'summary', ...summary });
        if (summary.interrupted) {
          const i = summary.interrupted;
          process.stderr.write(
            `stevedore: prefetch interrupted: ${i.blobs} blob(s) cut short, ${humanBytes(i.bytes)} of them kept; re-run the same command to resume\n`,
          );
          // Not s.close(): it would wait for the downloads in flight to finish. What reached the disk stays in
          // partial/ (re-hashed and continued with Range by the next run); SQLite's WAL needs no close.
          process.exit(130);
        }
        return summary.ok ? 0 : 1;
      });
    });
}
