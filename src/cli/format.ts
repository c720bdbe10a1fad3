// What every CLI command file shares: the config builder's type and a human-readable byte count.
import type { Config, ConfigFlags } from '../config/load.js';

/** Turns the command's flags into a validated Config (exits 2 with one line on a bad key). */
export type Build = (flags: ConfigFlags) => Config;

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
