// How the CLI prints what people read: byte counts and durations.

/** 1234567 -> "1.2 MB" (decimal units, as registries and `docker images` print sizes). */
export function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** 42 -> "42s", 600 -> "10m", 7200 -> "2.0h". */
export const seconds = (s: number): string => (s < 90 ? `${Math.ceil(s)}s` : s < 5400 ? `${Math.round(s / 60)}m` : `${(s / 3600).toFixed(1)}h`);
