// The `warm:` config section (scheduled cache warming inside serve) and the selection/schedule parsing it shares with prefetch.
import { z } from 'zod';
import { parsePlatform, type Compression, type Platform, type Selection } from '../oci/platform.js';
import { parseImageRef } from '../oci/reference.js';

export type Schedule = { kind: 'every'; ms: number } | { kind: 'at'; times: { hour: number; minute: number }[] };

export interface WarmEntry {
  /** For logs: the config's `name`, else warm[<index>]. */
  name: string;
  refs: string[];
  selection: Selection;
  concurrency: number;
  schedule: Schedule;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "6h", "30m", "2s", "1h30m", "1d" into milliseconds; undefined when malformed. */
export function parseDuration(value: string): number | undefined {
  const v = value.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(v)) return undefined;
  let ms = 0;
  for (const [, n, unit] of v.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return ms;
}

/** "02:00" (24 h, local time of the server) into hour and minute. */
export function parseTimeOfDay(value: string): { hour: number; minute: number } | undefined {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)$/.exec(value.trim());
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : undefined;
}

// Node's names for process.arch against the OCI platform's GOARCH names.
const GOARCH: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

/** The default when no platform is named: this host's, as `docker pull` does. */
export function hostPlatform(): Platform {
  return { os: 'linux', architecture: GOARCH[process.arch] ?? process.arch };
}

/** Platforms "all" (every one in the index), a list of os/arch[/variant], or none given (this host's). */
export function selectionOf(platforms: 'all' | string[] | undefined, compression: Compression): Selection {
  if (platforms === 'all') return { compression };
  return { compression, platforms: platforms && platforms.length > 0 ? platforms.map(parsePlatform) : [hostPlatform()] };
}

const validPlatform = (v: string): boolean => {
  try {
    parsePlatform(v);
    return true;
  } catch {
    return false;
  }
};
const validRef = (v: string): boolean => {
  try {
    parseImageRef(v);
    return true;
  } catch {
    return false;
  }
};

const MIN_INTERVAL_MS = 1000;
const timeOfDay = z.string().refine((v) => parseTimeOfDay(v) !== undefined, 'expected HH:MM (24 h, server local time), e.g. "02:00"');

const entrySchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    refs: z.array(z.string().refine(validRef, 'expected an image reference like ghcr.io/org/app:1.2 or alpine@sha256:...')).min(1),
    /** "all", or a list such as [linux/amd64, linux/arm64]; omitted: this host's platform. */
    platforms: z.union([z.literal('all'), z.array(z.string().refine(validPlatform, 'expected os/arch[/variant], e.g. linux/arm64')).min(1)]).optional(),
    compression: z.enum(['gzip', 'zstd', 'any']).default('gzip'),
    concurrency: z.number().int().min(1).max(64).default(4),
    /** Run at start, then again this long after each run started: "6h", "30m", "2s". */
    every: z
      .string()
      .refine((v) => (parseDuration(v) ?? 0) >= MIN_INTERVAL_MS, 'expected a duration of at least 1s, e.g. 6h, 30m or 2s')
      .optional(),
    /** Run every day at this local time (or each of these). */
    at: z.union([timeOfDay, z.array(timeOfDay).min(1)]).optional(),
  })
  .refine((e) => (e.every === undefined) !== (e.at === undefined), 'give exactly one of every (e.g. 6h) or at (e.g. "02:00")');

/** `warm:` — a list of schedules; each one prefetches its refs for its platforms. */
export const warmSchema = z
  .array(entrySchema)
  .default([])
  .transform((entries) =>
    entries.map(
      (e, i): WarmEntry => ({
        name: e.name ?? `warm[${i}]`,
        refs: e.refs,
        selection: selectionOf(e.platforms, e.compression),
        concurrency: e.concurrency,
        schedule:
          e.every !== undefined
            ? { kind: 'every', ms: parseDuration(e.every)! }
            : { kind: 'at', times: (Array.isArray(e.at) ? e.at : [e.at!]).map((t) => parseTimeOfDay(t)!) },
      }),
    ),
  );
