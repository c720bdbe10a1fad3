// How the status page prints numbers: bytes, ratios, ages, short digests.

/** 1234567 -> "1.2 MB" (decimal units, as the CLI prints them). */
export function bytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** 0.4567 -> "45.7 %"; no requests yet -> "–". */
export const percent = (part: number, whole: number): string => (whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : '–');

/** How long ago, coarsely: "12 s ago", "5 min ago", "3.0 h ago", "2 d ago". */
export function ago(then: number, now: number): string {
  const s = Math.max(0, (now - then) / 1000);
  if (s < 90) return `${Math.round(s)} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** sha256:0123456789ab… (12 hex digits are plenty for a person to tell digests apart). */
export const short = (digest: string): string => (digest.length > 19 ? `${digest.slice(0, 19)}…` : digest);

/** "09:41" local time of the server. */
export const clock = (t: number): string => {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};
