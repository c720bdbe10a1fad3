// The status page document: the cards (sections.tsx), inline CSS and the small inline script that refreshes them.
import type { StatusData } from './data.js';
import { SECTIONS } from './sections.js';

export const REFRESH_MS = 5000;

const CSS = `
:root { color-scheme: light; --bg:#f4f6f9; --card:#fff; --ink:#1d2733; --dim:#66727f; --line:#e3e8ee; --ok:#1f9d55; --warn:#d98a00; --bad:#d64545; --accent:#2f6fdb; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#16202c; color:#e8eef5; }
header h1 { margin:0; font-size:18px; letter-spacing:.3px; }
header span { color:#9fb0c2; font-size:13px; }
header #updated { margin-left:auto; }
main { display:grid; grid-template-columns:repeat(auto-fill,minmax(330px,1fr)); gap:16px; padding:16px 24px 32px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; min-width:0; }
section#traffic { grid-column:1 / -1; }
h2 { margin:0 0 10px; font-size:13px; text-transform:uppercase; letter-spacing:.6px; color:var(--dim); }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-weight:600; color:var(--dim); font-size:12px; }
td, th { padding:5px 6px; border-bottom:1px solid var(--line); vertical-align:top; overflow-wrap:anywhere; }
tr:last-child td { border-bottom:none; }
.mono { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
.num { text-align:right; white-space:nowrap; }
.err { color:var(--bad); font-size:12.5px; }
.empty { color:var(--dim); margin:4px 0; }
.badge { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; background:#eef1f5; color:var(--dim); }
.badge.ok { background:#e3f5ea; color:var(--ok); } .badge.bad { background:#fbe7e7; color:var(--bad); }
.stats { display:flex; flex-wrap:wrap; gap:28px; margin-bottom:8px; }
.stats b { display:block; font-size:24px; font-weight:650; }
.stats span { color:var(--dim); font-size:12.5px; }
dl { display:grid; grid-template-columns:auto 1fr; gap:3px 12px; margin:8px 0 0; }
dt { color:var(--dim); } dd { margin:0; }
progress { width:100%; height:10px; accent-color:var(--accent); }
.barcell { width:38%; }
.fill { display:grid; grid-template-columns:1fr; gap:2px; margin-bottom:8px; }
svg text { fill:var(--dim); font-size:11px; }
svg text.big { fill:var(--ink); font-size:22px; font-weight:650; }
.gauge { width:220px; display:block; margin:0 auto; }
.gauge path { fill:none; stroke-width:14; stroke-linecap:round; }
.gauge .track { stroke:var(--line); } .gauge .ok { stroke:var(--ok); } .gauge .warn { stroke:var(--warn); } .gauge .bad { stroke:var(--bad); }
.plot { width:100%; height:auto; }
.plot .axis { stroke:#c5ced8; } .plot .grid { stroke:var(--line); stroke-dasharray:3 3; }
.plot .bar { fill:#8fb3ee; } .plot .ratio { fill:none; stroke:var(--ok); stroke-width:2; } .plot .dot { fill:var(--ok); }
.plot text.hit { fill:var(--ok); }
.legend { color:var(--dim); font-size:12px; margin:4px 0 0; }
.sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 4px 0 10px; vertical-align:-1px; }
.sw.bar { background:#8fb3ee; } .sw.ratio { background:var(--ok); }
`;

// Replaces each card with the server's rendering of it; nothing else runs on the page.
const SCRIPT = `
(() => {
  const updated = document.getElementById('updated');
  async function refresh() {
    try {
      const res = await fetch('data', { cache: 'no-store', credentials: 'same-origin' });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      const body = await res.json();
      for (const [id, html] of Object.entries(body.sections)) {
        const el = document.getElementById(id);
        if (el) el.innerHTML = html;
      }
      updated.textContent = 'updated ' + new Date(body.status.now).toLocaleTimeString();
    } catch (e) {
      updated.textContent = 'refresh failed: ' + e.message;
    }
  }
  setInterval(refresh, ${REFRESH_MS});
})();
`;

export function Page(props: { d: StatusData; nonce: string }) {
  const { d, nonce } = props;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>stevedore status</title>
        {/* No favicon request (it would be a 404): an empty data: icon. */}
        <link rel="icon" href="data:," />
        <style nonce={nonce} dangerouslySetInnerHTML={{ __html: CSS }} />
      </head>
      <body>
        <header>
          <h1>stevedore</h1>
          <span>v{d.version}</span>
          <span>{d.offline ? 'offline: serving only what is cached' : 'pull-through cache'}</span>
          <span id="updated">updated {new Date(d.now).toISOString().slice(11, 19)} UTC</span>
        </header>
        <main>
          {Object.entries(SECTIONS).map(([id, Card]) => (
            <section id={id}>
              <Card d={d} />
            </section>
          ))}
        </main>
        <script nonce={nonce} dangerouslySetInnerHTML={{ __html: SCRIPT }} />
      </body>
    </html>
  );
}
