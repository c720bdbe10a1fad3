// The status page's cards, each rendered from StatusData alone (the page and its live refresh share them).
import { Gauge, TrafficPlot } from './charts.js';
import type { StatusData } from './data.js';
import { ago, bytes, percent, short } from './format.js';

type D = { d: StatusData };

const Empty = (props: { children: string }) => <p class="empty">{props.children}</p>;

function Storage({ d }: D) {
  const s = d.storage;
  return (
    <>
      <h2>Storage</h2>
      <Gauge used={s.used} budget={s.maxSize} />
      <dl>
        <dt>used</dt>
        <dd data-testid="storage-used">{bytes(s.used)}</dd>
        <dt>budget</dt>
        <dd>{s.maxSize ? bytes(s.maxSize) : 'none (maxSize)'}</dd>
        <dt>objects</dt>
        <dd>
          {s.blobs} blobs, {s.manifests} manifests
        </dd>
        {s.diskFree !== undefined ? (
          <>
            <dt>disk free</dt>
            <dd>
              {bytes(s.diskFree)}
              {s.diskSize ? ` of ${bytes(s.diskSize)}` : ''}
              {s.minFreeDisk ? ` (keeps ${bytes(s.minFreeDisk)})` : ''}
            </dd>
          </>
        ) : null}
      </dl>
    </>
  );
}

function Traffic({ d }: D) {
  const t = d.traffic;
  return (
    <>
      <h2>Is the cache paying off?</h2>
      <div class="stats">
        <div>
          <b data-testid="hit-ratio">{percent(t.hits, t.requests)}</b>
          <span>hit ratio ({t.requests} requests)</span>
        </div>
        <div>
          <b data-testid="served">{bytes(t.served)}</b>
          <span>served</span>
        </div>
        <div>
          <b data-testid="fetched">{bytes(t.fetched)}</b>
          <span>fetched upstream</span>
        </div>
        <div>
          <b data-testid="saved">{bytes(Math.max(0, t.served - t.fetched))}</b>
          <span>saved</span>
        </div>
      </div>
      <TrafficPlot samples={d.history} />
      <p class="legend">
        <i class="sw bar" /> bytes saved per minute <i class="sw ratio" /> hit ratio · since {ago(d.startedAt, d.now).replace(' ago', '')}
      </p>
    </>
  );
}

function Upstreams({ d }: D) {
  return (
    <>
      <h2>Upstreams</h2>
      <table>
        <tr>
          <th>name</th>
          <th>circuit</th>
          <th>last error</th>
        </tr>
        {d.upstreams.map((u) => (
          <tr>
            <td title={u.url}>{u.name}</td>
            <td>
              <span class={`badge ${u.open ? 'bad' : 'ok'}`}>{u.open ? 'open' : d.offline ? 'offline' : 'closed'}</span>
              {u.failures > 0 ? ` ${u.failures} failures` : ''}
            </td>
            <td class="err">{u.lastError ? `${u.lastError} (${ago(u.lastErrorAt ?? d.now, d.now)})` : '–'}</td>
          </tr>
        ))}
      </table>
    </>
  );
}

function Fills({ d }: D) {
  if (d.fills.length === 0) return <><h2>Downloads in flight</h2><Empty>none right now</Empty></>;
  return (
    <>
      <h2>Downloads in flight</h2>
      {d.fills.map((f) => (
        <div class="fill">
          <span class="mono">{f.label ?? ''} {short(f.digest)}</span>
          <progress max={f.size ?? 0} value={f.received} />
          <span>
            {bytes(f.received)}
            {f.size ? ` / ${bytes(f.size)}` : ''}
          </span>
        </div>
      ))}
    </>
  );
}

function Bars(props: { title: string; rows: { name: string; value: number; text: string }[]; empty: string; testid: string }) {
  const max = Math.max(1, ...props.rows.map((r) => r.value));
  return (
    <>
      <h2>{props.title}</h2>
      {props.rows.length === 0 ? (
        <Empty>{props.empty}</Empty>
      ) : (
        <table data-testid={props.testid}>
          {props.rows.map((r) => (
            <tr>
              <td class="mono">{r.name}</td>
              <td class="num">{r.text}</td>
              <td class="barcell">
                <progress max={max} value={r.value} />
              </td>
            </tr>
          ))}
        </table>
      )}
    </>
  );
}

const TopSize = ({ d }: D) => (
  <Bars title="Top repositories by size" testid="top-size" empty="nothing cached yet" rows={d.topBySize.map((r) => ({ name: r.name, value: r.bytes, text: bytes(r.bytes) }))} />
);
const TopPulls = ({ d }: D) => (
  <Bars title="Top repositories by pulls" testid="top-pulls" empty="no pulls since start" rows={d.topByPulls.map((r) => ({ name: r.name, value: r.pulls, text: String(r.pulls) }))} />
);

function Foreign({ d }: D) {
  return (
    <>
      <h2>Foreign layers</h2>
      {d.foreign.length === 0 ? (
        <Empty>none recorded</Empty>
      ) : (
        <table>
          {d.foreign.map((f) => (
            <tr>
              <td class="mono" title={f.url}>{short(f.digest)}</td>
              <td>
                <span class={`badge ${f.status === 'cached' || f.status === 'redirectable' || f.status === 'fetchable' ? 'ok' : f.status === 'unresolved' ? '' : 'bad'}`}>{f.status}</span>
              </td>
              <td class="num">{bytes(f.size)}</td>
              <td class="err">{f.lastError ?? ''}</td>
            </tr>
          ))}
        </table>
      )}
    </>
  );
}

function Pins({ d }: D) {
  return (
    <>
      <h2>Pins</h2>
      {d.pins.length === 0 ? (
        <Empty>no pinned images</Empty>
      ) : (
        <table>
          {d.pins.map((p) => (
            <tr>
              <td class="mono">{p.name}</td>
              <td class="mono" title={p.digest}>{short(p.digest)}</td>
              <td>{ago(p.createdAt, d.now)}</td>
            </tr>
          ))}
        </table>
      )}
    </>
  );
}

function Evictions({ d }: D) {
  return (
    <>
      <h2>Recent evictions</h2>
      {d.evictions.length === 0 ? (
        <Empty>{d.storage.maxSize || d.storage.minFreeDisk ? 'nothing evicted since start' : 'no budget set: nothing is evicted'}</Empty>
      ) : (
        <table>
          {d.evictions.map((e) => (
            <tr>
              <td>{ago(e.at, d.now)}</td>
              <td class="num">{bytes(e.freedBytes)}</td>
              <td class="mono">{e.images.map((i) => `${i.image} (${bytes(i.bytes)})`).join(', ')}</td>
            </tr>
          ))}
        </table>
      )}
    </>
  );
}

function Warm({ d }: D) {
  return (
    <>
      <h2>Warm runs</h2>
      {d.warm.length === 0 ? (
        <Empty>no warm runs (config warm:)</Empty>
      ) : (
        <table>
          {d.warm.map((w) => (
            <tr>
              <td>{w.entry}</td>
              <td>{ago(w.startedAt, d.now)}</td>
              <td>
                <span class={`badge ${w.ok ? 'ok' : 'bad'}`}>{w.ok ? 'ok' : `${w.failed} failed`}</span>
              </td>
              <td class="num">
                {bytes(w.fetchedBytes)} fetched, {w.cachedBlobs} cached, {w.seconds.toFixed(1)} s
              </td>
            </tr>
          ))}
        </table>
      )}
    </>
  );
}

/** Card id -> card, in page order; ids are also the keys of /-/ui/data's "sections". */
export const SECTIONS = {
  traffic: Traffic,
  storage: Storage,
  upstreams: Upstreams,
  fills: Fills,
  'top-size': TopSize,
  'top-pulls': TopPulls,
  foreign: Foreign,
  pins: Pins,
  evictions: Evictions,
  warm: Warm,
} as const;
