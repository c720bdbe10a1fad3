// The bench's result shape, the PASS/FAIL targets, the printed side-by-side tables and bench/results.json.
import { writeFileSync } from 'node:fs';
import type { VerifyCost } from './verify-cost.ts';
import type { ColdResult } from './cold.ts';
import type { ProbeLatency } from './probe.ts';
import type { LoadResult } from './loadgen.ts';
import type { ManyResult } from './many.ts';
import { PARALLEL_CLIENTS as PAR, WHO, WHO_LABEL, type WarmResult } from './warm.ts';

export const TARGETS = {
  /** warm, one curl client: stevedore MB/s / nginx sendfile MB/s */
  warmVsNginx: 0.95,
  /** warm, one curl client and 10 at once: stevedore MB/s / peer MB/s */
  warmVsPeer: 1.0,
  /** cold over the 1 Gbit/s link: direct time / stevedore time (throughput ratio) */
  coldLinkVsDirect: 0.9,
  coalescingRatio: 1.0,
  manifestP99Ms: 50,
  rssPeakBytes: 150 * 1024 * 1024,
  rssIdleBytes: 100 * 1024 * 1024,
} as const;

export interface Series {
  runs: number[];
  best: number;
  median: number;
}

export interface Coalescing {
  workers: number;
  clients: number;
  blobBytes: number;
  upstreamGets: number;
  upstreamHeads: number;
  ratio: number;
  bytesExact: boolean;
  pass: boolean;
}

export interface Results {
  meta: {
    date: string;
    node: string;
    cpus: number;
    platform: string;
    blobBytes: number;
    coalesceBlobBytes: number;
    totalSeconds: number;
    stageSeconds: Record<string, number>;
    loadavg1: { start: number; end: number };
  };
  warm: WarmResult;
  cold: ColdResult[];
  coalescing: Coalescing[];
  manifests: { getByDigest: LoadResult; headByTag: LoadResult; outcomes: { getByDigest: string; headByTag: string } };
  rss: { clients: number; idleBeforeBytes: number; peakRssBytes: number; vmHwmBytes: number; idleAfterBytes: number; samples: number; aggregateMBps: number };
  many: ManyResult;
  verifyCost: VerifyCost;
}

export function series(runs: number[]): Series {
  const s = [...runs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
  return { runs, best: NaN, median };
}
/** best = highest (throughput) */
export const maxSeries = (runs: number[]): Series => ({ ...series(runs), best: Math.max(...runs) });
/** best = lowest (time) */
export const minSeries = (runs: number[]): Series => ({ ...series(runs), best: Math.min(...runs) });

const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const f = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
const mark = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');
const spread = (s: Series, d = 0): string => `${f(s.median, d)} (${f(Math.min(...s.runs), d)}-${f(Math.max(...s.runs), d)})`;

const linkName = (c: ColdResult): string => (c.bytesPerSec ? `${f(c.bytesPerSec / 1e6)} MB/s` : 'loopback');

/** Every target with its measured value, for the summary and for results.json. */
export function checks(r: Results): { what: string; value: string; target: string; pass: boolean }[] {
  const w = r.warm;
  const out: { what: string; value: string; target: string; pass: boolean }[] = [];
  const add = (what: string, v: number, target: string, pass: boolean, d = 2): void => void out.push({ what, value: f(v, d), target, pass });
  for (const who of ['stevedore', 'front'] as const) {
    const vsN = w.curl[who].median / w.curl.nginx.median;
    const vsP = w.curl[who].median / w.curl.peer.median;
    const par = w.parallel[who] / w.parallel.peer;
    add(`warm curl ${who} / nginx`, vsN, `>= ${TARGETS.warmVsNginx}`, vsN >= TARGETS.warmVsNginx);
    add(`warm curl ${who} / peer`, vsP, `>= ${TARGETS.warmVsPeer}`, vsP >= TARGETS.warmVsPeer);
    add(`warm ${PAR} clients ${who} / peer`, par, `>= ${TARGETS.warmVsPeer}`, par >= TARGETS.warmVsPeer);
  }
  out.push({ what: 'warm bytes sha256 (stevedore, peer, front)', value: String(w.sha256Verified), target: 'true', pass: w.sha256Verified });
  const link = r.cold.find((c) => c.bytesPerSec === 125e6);
  if (link)
    add(
      'cold over 125 MB/s: direct time / stevedore time',
      1 / link.ratio.stevedore,
      `>= ${TARGETS.coldLinkVsDirect}`,
      1 / link.ratio.stevedore >= TARGETS.coldLinkVsDirect,
    );
  const loop = r.cold.find((c) => c.bytesPerSec === undefined);
  if (loop)
    add(
      'cold loopback: stevedore / direct time vs peer / direct',
      loop.ratio.stevedore,
      // The peer streams upstream's bytes to the client unhashed and downloads the blob again to store it.
      `<= ${f(loop.ratio.peer, 2)} (peer, at ${loop.upstreamGets.peer.join('/')} upstream GETs per pull)`,
      loop.ratio.stevedore <= loop.ratio.peer,
    );
  const gets = r.cold.flatMap((c) => c.upstreamGets.stevedore);
  add(
    'cold pulls: upstream GETs per pull (stevedore)',
    Math.max(...gets),
    '1',
    gets.every((g) => g === 1),
    0,
  );
  for (const k of r.coalescing) add(`coalescing, ${k.workers} worker(s): upstream GETs`, k.upstreamGets, '1', k.pass, 0);
  const p99 = r.manifests.getByDigest.p99ms;
  add(
    `manifest GET p99 ms, ${r.manifests.getByDigest.connections} conns`,
    p99,
    `<= ${TARGETS.manifestP99Ms}`,
    p99 <= TARGETS.manifestP99Ms && r.manifests.getByDigest.errors === 0,
    1,
  );
  const peak = Math.max(r.rss.peakRssBytes, Number.isNaN(r.rss.vmHwmBytes) ? 0 : r.rss.vmHwmBytes);
  out.push({
    what: `peak RSS, ${r.rss.clients} warm downloads`,
    value: mib(peak),
    target: `<= ${mib(TARGETS.rssPeakBytes)}`,
    pass: peak <= TARGETS.rssPeakBytes,
  });
  out.push({
    what: 'idle RSS after',
    value: mib(r.rss.idleAfterBytes),
    target: `<= ${mib(TARGETS.rssIdleBytes)}`,
    pass: r.rss.idleAfterBytes <= TARGETS.rssIdleBytes,
  });
  out.push({ what: `${r.many.connections} connections: errors`, value: String(r.many.errors), target: '0', pass: r.many.pass });
  return out;
}
function table(out: (l: string) => void, head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => (x[i] ?? '').length)));
  const fmt = (x: string[]): string =>
    x
      .map((v, i) => v.padEnd(widths[i]!))
      .join(' | ')
      .trimEnd();
  out(fmt(head));
  out(widths.map((n) => '-'.repeat(n)).join('-|-'));
  for (const x of rows) out(fmt(x));
  out('');
}

export function printTable(r: Results, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const w = r.warm;
  out('');
  out(
    `stevedore bench  (${r.meta.date}, node ${r.meta.node}, ${r.meta.cpus} cpus, load avg ${f(r.meta.loadavg1.start, 2)} -> ${f(r.meta.loadavg1.end, 2)}; MB = 10^6 bytes; median (min-max))`,
  );
  out('');
  out(`1. warm ${mib(r.meta.blobBytes)} blob, MB/s; ratios of medians; N = ${w.workers} workers`);
  table(
    out,
    ['server', 'curl', 'x nginx', 'x peer', 'undici', 'x nginx', `${PAR} curl at once`, 'x peer'],
    WHO.map((who) => [
      WHO_LABEL[who],
      spread(w.curl[who]),
      f(w.curl[who].median / w.curl.nginx.median, 2),
      f(w.curl[who].median / w.curl.peer.median, 2),
      spread(w.undici[who]),
      f(w.undici[who].median / w.undici.nginx.median, 2),
      f(w.parallel[who]),
      f(w.parallel[who] / w.parallel.peer, 2),
    ]),
  );
  out(`2. cold ${mib(r.meta.blobBytes)} blob, curl, ms; ratio = time / direct time (lower is better)`);
  table(
    out,
    ['link', 'runs', 'upstream direct', 'stevedore', 'ratio', 'upstream GETs', 'peer', 'ratio', 'upstream GETs', 'dd new file'],
    r.cold.map((c) => [
      linkName(c),
      String(c.runsEach),
      spread(c.ms.direct),
      spread(c.ms.stevedore),
      f(c.ratio.stevedore, 2),
      c.upstreamGets.stevedore.join(' / '),
      spread(c.ms.peer),
      f(c.ratio.peer, 2),
      c.upstreamGets.peer.join(' / '),
      spread(c.newFileMs),
    ]),
  );
  out('2c. a cached manifest GET by digest every 10 ms during one more cold pull each (new connection each), ms');
  const worst = (ps: ProbeLatency[]): string => {
    const p = (k: 'p50ms' | 'p99ms' | 'maxms'): string => f(Math.max(...ps.map((x) => x[k])), 1);
    return `${p('p50ms')} / ${p('p99ms')} / ${p('maxms')} (${ps.reduce((n, x) => n + x.count, 0)} GETs, ${ps.reduce((n, x) => n + x.errors, 0)} errors)`;
  };
  table(
    out,
    ['link', 'stevedore p50 / p99 / max', 'peer p50 / p99 / max'],
    r.cold.filter((c) => c.manifestDuring.stevedore.length > 0).map((c) => [linkName(c), worst(c.manifestDuring.stevedore), worst(c.manifestDuring.peer)]),
  );
  const m = r.manifests;
  out('3. small requests and memory');
  table(
    out,
    ['measurement', 'value'],
    [
      [
        `GET manifest by digest, ${m.getByDigest.connections} conns (cache: ${m.outcomes.getByDigest})`,
        `${f(m.getByDigest.rps)} req/s, p50 ${f(m.getByDigest.p50ms, 1)} / p99 ${f(m.getByDigest.p99ms, 1)} / max ${f(m.getByDigest.maxms, 1)} ms, ${m.getByDigest.errors + m.getByDigest.non2xx} errors`,
      ],
      [
        `HEAD manifest by tag, ${m.headByTag.connections} conns (cache: ${m.outcomes.headByTag})`,
        `${f(m.headByTag.rps)} req/s, p50 ${f(m.headByTag.p50ms, 1)} / p99 ${f(m.headByTag.p99ms, 1)} / max ${f(m.headByTag.maxms, 1)} ms, ${m.headByTag.errors + m.headByTag.non2xx} errors`,
      ],
      [
        `RSS, --workers 1, ${r.rss.clients} warm downloads at once`,
        `idle ${mib(r.rss.idleBeforeBytes)}, peak ${mib(Math.max(r.rss.peakRssBytes, r.rss.vmHwmBytes || 0))}, idle after ${mib(r.rss.idleAfterBytes)}, ${f(r.rss.aggregateMBps)} MB/s`,
      ],
      [
        `${r.many.connections} connections, manifests + ${r.many.blobBytes} B blobs`,
        `${f(r.many.rps)} req/s, p99 ${f(r.many.manifest.p99ms, 1)} / ${f(r.many.blob.p99ms, 1)} ms, ${r.many.errors} errors, peak RSS ${mib(r.many.peakRssBytes)}`,
      ],
      [
        `verify-on-serve cost: read ${mib(r.verifyCost.bytes)} cached, MB/s`,
        `${spread(r.verifyCost.readOnly)} read only, ${spread(r.verifyCost.readAndHash)} read + sha256: +${f(r.verifyCost.extraMsPerGB)} ms CPU per GB; a verified hit could not beat ${f(r.verifyCost.readAndHash.median)} MB/s (stevedore serves ${f(r.warm.curl.stevedore1.median)} MB/s per worker unverified)`,
      ],
      ...r.coalescing.map((k) => [
        `coalescing: ${k.clients} cold clients, ${k.workers} worker(s), ${mib(k.blobBytes)}`,
        `${k.upstreamGets} upstream GET(s), ${k.upstreamHeads} HEAD(s), bytes exact: ${k.bytesExact}`,
      ]),
    ],
  );
  out('4. targets');
  table(
    out,
    ['check', 'value', 'target', 'result'],
    checks(r).map((c) => [c.what, c.value, c.target, mark(c.pass)]),
  );
  out(
    `stage seconds: ${Object.entries(r.meta.stageSeconds)
      .map(([s, t]) => `${s} ${t.toFixed(1)}`)
      .join(', ')}; total ${r.meta.totalSeconds.toFixed(1)} s`,
  );
}

export function writeJson(file: string, r: Results): void {
  writeFileSync(file, `${JSON.stringify({ targets: TARGETS, checks: checks(r), ...r }, null, 2)}\n`);
}
