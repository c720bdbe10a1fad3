// The bench's result shape, the PASS/FAIL targets, the printed table and bench/results.json.
import { writeFileSync } from 'node:fs';
import type { LoadResult } from './loadgen.ts';
import type { LinkResult } from './link.ts';
import type { ManyResult } from './many.ts';

export const TARGETS = {
  warmVsNginx: 0.8,
  coldVsDirect: 1.15,
  coalescingRatio: 1.0,
  rssBytes: 200 * 1024 * 1024,
} as const;

export interface Series {
  runs: number[];
  best: number;
  median: number;
}
export interface Trio {
  nginx: Series;
  upstream: Series;
  stevedore: Series;
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
  warm: {
    runsEach: number;
    curlRunsEach: number;
    sha256Verified: boolean;
    mbps: Trio;
    curlMBps: Trio | undefined;
    ratioVsNginx: number;
    curlRatioVsNginx: number;
    ratioVsUpstream: number;
    /** stevedore CPU (all threads) per warm GET of the blob, ms */
    stevedoreCpuMs: Series;
    nginxCpuMs: Series;
    pass: boolean;
    passCurl: boolean | undefined;
  };
  cold: {
    runsEach: number;
    ms: { stevedore: Series; direct: Series };
    ratio: number;
    pass: boolean;
    stevedoreHeadersMs: Series;
    stevedoreAllButLastMs: Series;
    stevedoreCpuMs: Series;
  };
  coalescing: {
    clients: number;
    blobBytes: number;
    upstreamGets: number;
    upstreamHeads: number;
    upstreamBytes: number;
    ratio: number;
    clientMs: Series;
    pass: boolean;
  };
  manifests: {
    getByDigest: LoadResult;
    headByTag: LoadResult /** X-Stevedore-Cache of one request before the load */;
    outcomes: { getByDigest: string; headByTag: string };
  };
  rss: { clients: number; idleRssBytes: number; peakRssBytes: number; vmHwmBytes: number; samples: number; aggregateMBps: number; pass: boolean };
  many: ManyResult;
  link: LinkResult;
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
const list = (xs: number[], d = 0): string => xs.map((x) => f(x, d)).join(' / ');

export function printTable(r: Results, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const rows: [string, string, string, string][] = [];
  const row = (metric: string, value: string, target = '', result = ''): void => void rows.push([metric, value, target, result]);
  const w = r.warm;
  row(`1. warm ${mib(r.meta.blobBytes)} blob, MB/s, undici client (median; runs)`, '', '', '');
  row('   nginx sendfile, same file', `${f(w.mbps.nginx.median)}  (${list(w.mbps.nginx.runs)})`);
  row('   upstream registry direct', `${f(w.mbps.upstream.median)}  (${list(w.mbps.upstream.runs)})`);
  row('   stevedore, cached', `${f(w.mbps.stevedore.median)}  (${list(w.mbps.stevedore.runs)})`);
  row(
    '   stevedore / nginx (median)',
    `${f(w.ratioVsNginx, 2)}x  (best/best: ${f(w.mbps.stevedore.best / w.mbps.nginx.best, 2)}x)`,
    `>= ${TARGETS.warmVsNginx}x`,
    mark(w.pass),
  );
  row('   stevedore / upstream (median)', `${f(w.ratioVsUpstream, 2)}x`);
  row('   CPU per GET, ms: stevedore / nginx (median)', `${f(w.stevedoreCpuMs.median)} / ${f(w.nginxCpuMs.median)}`);
  row('   sha256 of body through stevedore', w.sha256Verified ? 'matches digest' : 'MISMATCH', 'matches', mark(w.sha256Verified));
  if (w.curlMBps) {
    const cm = w.curlMBps;
    row(`   same, curl client: nginx / upstream / stevedore`, `${f(cm.nginx.median)} / ${f(cm.upstream.median)} / ${f(cm.stevedore.median)}`);
    row('   stevedore / nginx, curl (median)', `${f(w.curlRatioVsNginx, 2)}x`, `>= ${TARGETS.warmVsNginx}x`, mark(w.passCurl === true));
  }
  const c = r.cold;
  row(`2. cold ${mib(r.meta.blobBytes)} blob, ms (median; runs)`, '', '', '');
  row('   upstream registry direct', `${f(c.ms.direct.median)}  (${list(c.ms.direct.runs)})`);
  row('   stevedore, fresh data dir', `${f(c.ms.stevedore.median)}  (${list(c.ms.stevedore.runs)})`);
  row('   cold / direct (median)', `${f(c.ratio, 2)}x`, `<= ${TARGETS.coldVsDirect}x`, mark(c.pass));
  row('   stevedore: headers / all-but-last byte', `${f(c.stevedoreHeadersMs.median)} / ${f(c.stevedoreAllButLastMs.median)}`);
  row('   stevedore CPU per cold GET, ms (median)', f(c.stevedoreCpuMs.median));
  const k = r.coalescing;
  const l = r.link;
  row(`2b. cold over a ${f(l.bytesPerSec / 1e6)} MB/s link, ms (median; runs)`, '', '', '');
  row('   registry direct over the link', `${f(l.ms.direct.median)}  (${list(l.ms.direct.runs)})`);
  row('   stevedore over the link', `${f(l.ms.stevedore.median)}  (${list(l.ms.stevedore.runs)})`);
  row('   cold / direct over the link (median)', `${f(l.ratio, 2)}x`, `<= ${TARGETS.coldVsDirect}x`, mark(l.pass));
  row(`3. coalescing: ${k.clients} cold clients, ${mib(k.blobBytes)} blob`, '', '', '');
  row('   upstream GETs / HEADs of the blob', `${k.upstreamGets} / ${k.upstreamHeads}`);
  row('   upstream bytes / blob size', f(k.ratio, 2), f(TARGETS.coalescingRatio, 2), mark(k.pass));
  row('   client time, ms (median / slowest)', `${f(k.clientMs.median)} / ${f(Math.max(...k.clientMs.runs))}`);
  const mo = r.manifests.outcomes;
  for (const [name, l, o] of [
    ['GET manifest by digest', r.manifests.getByDigest, mo.getByDigest],
    ['HEAD manifest by tag, in TTL', r.manifests.headByTag, mo.headByTag],
  ] as const) {
    row(`4. ${name}, ${l.connections} keep-alive conns, ${f(l.seconds, 1)} s`, `cache: ${o}`, 'hit', mark(o === 'hit'));
    row('   req/s', f(l.rps));
    row('   latency p50 / p99 / max, ms', `${f(l.p50ms, 2)} / ${f(l.p99ms, 2)} / ${f(l.maxms, 1)}`);
    row(
      '   requests / errors / non-200 / reconnects',
      `${l.requests} / ${l.errors} / ${l.non2xx} / ${l.reconnects}`,
      '0 errors',
      mark(l.errors === 0 && l.non2xx === 0),
    );
  }
  const m = r.rss;
  row(`5. stevedore memory, ${m.clients} concurrent warm downloads`, '', '', '');
  row('   RSS idle before', mib(m.idleRssBytes));
  row(`   peak VmRSS (${m.samples} samples @50 ms)`, mib(m.peakRssBytes), `<= ${mib(TARGETS.rssBytes)}`, mark(m.peakRssBytes <= TARGETS.rssBytes));
  row('   VmHWM (since restart)', mib(m.vmHwmBytes), `<= ${mib(TARGETS.rssBytes)}`, mark(m.vmHwmBytes <= TARGETS.rssBytes));
  row('   aggregate throughput, MB/s', f(m.aggregateMBps));
  const many = r.many;
  row(`6. ${many.connections} connections, ${f(many.manifest.seconds, 1)} s: manifests + ${many.blobBytes} B blobs`, '', '', '');
  row('   req/s (manifest + blob)', `${f(many.rps)} (${f(many.manifest.rps)} + ${f(many.blob.rps)})`);
  row('   p99 ms (manifest / blob)', `${f(many.manifest.p99ms, 1)} / ${f(many.blob.p99ms, 1)}`);
  row('   errors + non-200 / reconnects', `${many.errors} / ${many.manifest.reconnects + many.blob.reconnects}`, '0', mark(many.pass));
  row('   peak RSS', mib(many.peakRssBytes));

  const head: [string, string, string, string] = ['metric', 'value', 'target', 'result'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
  const fmt = (x: string[]): string =>
    x
      .map((v, i) => v.padEnd(widths[i]!))
      .join(' | ')
      .trimEnd();
  out('');
  out(
    `stevedore bench  (${r.meta.date}, node ${r.meta.node}, ${r.meta.cpus} cpus, load avg ${f(r.meta.loadavg1.start, 2)} -> ${f(r.meta.loadavg1.end, 2)}; MB = 10^6 bytes)`,
  );
  out(fmt(head));
  out(widths.map((n) => '-'.repeat(n)).join('-|-'));
  for (const x of rows) out(fmt(x));
  out('');
  out(
    `stage seconds: ${Object.entries(r.meta.stageSeconds)
      .map(([s, t]) => `${s} ${t.toFixed(1)}`)
      .join(', ')}; total ${r.meta.totalSeconds.toFixed(1)} s`,
  );
}

export function writeJson(file: string, r: Results): void {
  writeFileSync(file, `${JSON.stringify({ targets: TARGETS, ...r }, null, 2)}\n`);
}
