// The status page's two drawings, as inline SVG (no script, no external asset): the storage gauge and the traffic plot.
import type { MinuteSample } from '../../obs/history.js';
import { bytes, clock } from './format.js';

/** A half-circle gauge: used against the budget; without a budget, just the used bytes. */
export function Gauge(props: { used: number; budget?: number }) {
  const { used, budget } = props;
  const pct = budget ? Math.min(100, (100 * used) / budget) : 0;
  const level = pct >= 90 ? 'bad' : pct >= 70 ? 'warn' : 'ok';
  return (
    <svg class="gauge" viewBox="0 0 160 96" role="img" aria-label={budget ? `${pct.toFixed(0)} % of the storage budget used` : 'no storage budget set'}>
      <path d="M 12 84 A 68 68 0 0 1 148 84" class="track" pathLength="100" />
      {budget ? <path d="M 12 84 A 68 68 0 0 1 148 84" class={`fill ${level}`} pathLength="100" stroke-dasharray={`${pct.toFixed(2)} 100`} /> : null}
      <text x="80" y="70" class="big" text-anchor="middle">
        {budget ? `${pct.toFixed(0)} %` : bytes(used)}
      </text>
      <text x="80" y="90" class="small" text-anchor="middle">
        {budget ? `of ${bytes(budget)}` : 'no budget set'}
      </text>
    </svg>
  );
}

const W = 1000;
const H = 170;
/** The plot spans at least this many minutes, newest on the right, so a young process does not draw giant bars. */
const MIN_MINUTES = 60;
const PAD = { left: 56, right: 44, top: 10, bottom: 22 };

/**
 * Per minute: bars of bytes saved (served minus fetched, never below 0) and a line of the hit ratio (right axis).
 * Minutes without requests leave a gap in the line rather than pretending 0 %.
 */
export function TrafficPlot(props: { samples: MinuteSample[] }) {
  const s = props.samples;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const saved = s.map((m) => Math.max(0, m.served - m.fetched));
  const max = Math.max(1, ...saved);
  const slots = Math.max(MIN_MINUTES, s.length);
  const step = iw / slots;
  const x = (i: number) => PAD.left + (slots - s.length + i) * step;
  const lines: string[] = [];
  let run: string[] = [];
  s.forEach((m, i) => {
    if (m.requests === 0) {
      if (run.length) lines.push(run.join(' '));
      run = [];
      return;
    }
    run.push(`${(x(i) + step / 2).toFixed(1)},${(PAD.top + ih * (1 - m.hits / m.requests)).toFixed(1)}`);
  });
  if (run.length) lines.push(run.join(' '));
  const last = s.at(-1);
  const first = last ? { t: last.t - (slots - 1) * 60_000 } : undefined;
  return (
    <svg class="plot" viewBox={`0 0 ${W} ${H}`} role="img" aria-label="bytes saved per minute and hit ratio">
      <line x1={PAD.left} y1={PAD.top + ih} x2={W - PAD.right} y2={PAD.top + ih} class="axis" />
      <line x1={PAD.left} y1={PAD.top} x2={W - PAD.right} y2={PAD.top} class="grid" />
      <text x={PAD.left - 6} y={PAD.top + 8} class="small" text-anchor="end">
        {bytes(max)}
      </text>
      <text x={PAD.left - 6} y={PAD.top + ih} class="small" text-anchor="end">
        0
      </text>
      <text x={W - PAD.right + 6} y={PAD.top + 8} class="small hit">
        100 %
      </text>
      <text x={W - PAD.right + 6} y={PAD.top + ih} class="small hit">
        0 %
      </text>
      {saved.map((v, i) =>
        v > 0 ? (
          <rect x={(x(i) + step * 0.1).toFixed(1)} y={(PAD.top + ih * (1 - v / max)).toFixed(1)} width={Math.max(1, step * 0.8).toFixed(1)} height={((ih * v) / max).toFixed(1)} class="bar" />
        ) : null,
      )}
      {lines.map((points) =>
        points.includes(' ') ? <polyline points={points} class="ratio" /> : <circle cx={points.split(',')[0]} cy={points.split(',')[1]} r="2.5" class="dot" />,
      )}
      {first ? (
        <text x={PAD.left} y={H - 6} class="small">
          {clock(first.t)}
        </text>
      ) : null}
      {last ? (
        <text x={W - PAD.right} y={H - 6} class="small" text-anchor="end">
          {clock(last.t)}
        </text>
      ) : null}
    </svg>
  );
}
