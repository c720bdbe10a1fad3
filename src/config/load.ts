// Config: defaults < YAML file < STEVEDORE_* env < flags, validated once by zod and frozen.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { foreignSchema } from './foreign.js';
import { warmSchema } from './warm.js';

export const BUILTIN_UPSTREAMS: Record<string, string> = {
  'docker.io': 'https://registry-1.docker.io',
  'ghcr.io': 'https://ghcr.io',
  'quay.io': 'https://quay.io',
  'registry.k8s.io': 'https://registry.k8s.io',
  'gcr.io': 'https://gcr.io',
  'mcr.microsoft.com': 'https://mcr.microsoft.com',
  'public.ecr.aws': 'https://public.ecr.aws',
};

const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));

const upstreamSchema = z.strictObject({
  url: httpUrl,
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  passwordFile: z.string().optional(),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
});

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3, ti: 1024 ** 4, tib: 1024 ** 4 };

/** Parses "500GB", "20GiB", "1.5T", 1000000 into bytes; undefined when malformed. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)(?:\/s)?\s*$/i.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  return m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : undefined;
}

const byteSize = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseByteSize(v);
  if (n === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size like 500GB or 20GiB, got "${v}"` });
    return z.NEVER;
  }
  return n;
});

const listenSchema = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT');

export const configSchema = z.strictObject({
  listen: listenSchema.default('0.0.0.0:5000'),
  data: z.string().min(1).default('./data'),
  defaultUpstream: z.string().min(1).default('docker.io'),
  builtinUpstreams: z.boolean().default(true),
  upstreams: z.record(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, 'upstream names are host[:port]'), upstreamSchema).default({}),
  tagTtl: z.number().int().min(0).max(365 * 24 * 3600).default(30),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  timeouts: z.strictObject({
    connect: z.number().int().positive().default(10_000),
    headers: z.number().int().positive().default(20_000),
    bodyIdle: z.number().int().positive().default(30_000),
  }).prefault({}),
  retries: z.number().int().min(0).max(10).default(3),
  /** Air-gapped: never contact any upstream; tags served from cache whatever their age. */
  offline: z.boolean().default(false),
  /** Storage budget for blobs + manifests; undefined = unbounded. */
  maxSize: byteSize.optional(),
  /** Evict until the data dir's file system has at least this much free. */
  minFreeDisk: byteSize.optional(),
  /** Upper bound on bytes per second fetched from all upstreams together, e.g. 20MB/s; undefined = no limit. */
  upstreamRate: byteSize.optional(),
  /** Seconds between eviction sweeps. */
  sweepInterval: z.number().int().positive().default(60),
  circuitBreaker: z.strictObject({
    /** Consecutive upstream failures that open the circuit. */
    failures: z.number().int().positive().default(5),
    /** Seconds the circuit stays open before one probe request is let through. */
    cooldown: z.number().int().positive().default(30),
  }).prefault({}),
  /** Foreign / non-distributable layers: ordered URL rules (default: deny every URL). */
  foreign: foreignSchema,
  /** Scheduled cache warming inside serve: refs, platforms, and `every: 6h` or `at: "02:00"` (local time). */
  warm: warmSchema,
  /** Bearer token for the admin API under /-/admin/ (off when unset); env STEVEDORE_ADMIN_TOKEN. */
  adminToken: z.string().min(16, 'adminToken must be at least 16 characters').optional(),
});

export type ConfigInput = z.input<typeof configSchema>;
export type RawUpstream = z.output<typeof upstreamSchema>;
export interface Upstream {
  readonly name: string;
  readonly url: string;
  /** docker.io's rule: single-component names mean library/<name>. */
  readonly libraryPrefix: boolean;
  readonly credentials?: { readonly username?: string; readonly password?: string; readonly token?: string };
}
export interface Config extends Omit<z.output<typeof configSchema>, 'upstreams'> {
  readonly upstreams: Readonly<Record<string, Upstream>>;
  readonly host: string;
  readonly port: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Flags as the CLI gives them; each one overrides the file and env. */
export interface ConfigFlags {
  config?: string;
  listen?: string;
  data?: string;
  upstream?: string[];
  tagTtl?: string;
  logLevel?: string;
  offline?: boolean;
  maxSize?: string;
  minFreeDisk?: string;
  upstreamRate?: string;
}

/** `URL` -> named by host[:port], becomes the default; `NAME=URL` -> named upstream. */
export function parseUpstreamFlag(value: string): { name: string; url: string; isDefault: boolean } {
  const eq = value.indexOf('=');
  if (eq > 0 && !value.slice(0, eq).includes('/')) return { name: value.slice(0, eq), url: value.slice(eq + 1), isDefault: false };
  let host: string;
  try {
    host = new URL(value).host;
  } catch {
    throw new ConfigError(`invalid config: upstream: "${value}" is neither URL nor NAME=URL`);
  }
  return { name: host, url: value, isDefault: true };
}

function envKey(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

function readSecretFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(`invalid config: ${key}: cannot read ${path}: ${(e as Error).message}`);
  }
}

export function loadConfig(flags: ConfigFlags, env: NodeJS.ProcessEnv = process.env): Config {
  const file = flags.config ?? env.STEVEDORE_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`invalid config: cannot read ${file}: ${(e as Error).message}`);
    }
    const parsed: unknown = parseYaml(text);
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`invalid config: ${file}: top level must be a mapping`);
    }
    raw = (parsed ?? {}) as Record<string, unknown>;
  }
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) raw[key] = value;
  };
  const num = (v: string | undefined): number | string | undefined => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : v);
  set('listen', env.STEVEDORE_LISTEN);
  set('data', env.STEVEDORE_DATA);
  set('tagTtl', num(env.STEVEDORE_TAG_TTL));
  set('logLevel', env.STEVEDORE_LOG_LEVEL);
  set('maxSize', env.STEVEDORE_MAX_SIZE);
  set('minFreeDisk', env.STEVEDORE_MIN_FREE_DISK);
  set('upstreamRate', env.STEVEDORE_UPSTREAM_RATE);
  set('adminToken', env.STEVEDORE_ADMIN_TOKEN);
  if (env.STEVEDORE_OFFLINE !== undefined) raw.offline = /^(1|true|yes)$/i.test(env.STEVEDORE_OFFLINE);
  set('listen', flags.listen);
  set('maxSize', flags.maxSize);
  set('minFreeDisk', flags.minFreeDisk);
  set('upstreamRate', flags.upstreamRate);
  if (flags.offline) raw.offline = true;
  set('data', flags.data);
  set('tagTtl', num(flags.tagTtl));
  set('logLevel', flags.logLevel);
  const upstreamArgs = [...(env.STEVEDORE_UPSTREAM?.split(',').filter(Boolean) ?? []), ...(flags.upstream ?? [])];
  const ups = { ...((raw.upstreams as Record<string, unknown> | undefined) ?? {}) };
  for (const arg of upstreamArgs) {
    const u = parseUpstreamFlag(arg.trim());
    ups[u.name] = { ...(ups[u.name] as object | undefined), url: u.url };
    if (u.isDefault) raw.defaultUpstream = u.name;
  }
  raw.upstreams = ups;

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(`invalid config: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const c = result.data;
  const upstreams: Record<string, Upstream> = {};
  const all: Record<string, RawUpstream> = {};
  if (c.builtinUpstreams) for (const [name, url] of Object.entries(BUILTIN_UPSTREAMS)) all[name] = { url };
  Object.assign(all, c.upstreams);
  for (const [name, u] of Object.entries(all)) {
    const k = `STEVEDORE_UPSTREAM_${envKey(name)}`;
    const username = env[`${k}_USERNAME`] ?? u.username;
    const password = env[`${k}_PASSWORD`] ?? (u.passwordFile ? readSecretFile(u.passwordFile, `upstreams.${name}.passwordFile`) : u.password);
    const token = env[`${k}_TOKEN`] ?? (u.tokenFile ? readSecretFile(u.tokenFile, `upstreams.${name}.tokenFile`) : u.token);
    const credentials = username !== undefined || token !== undefined ? { username, password, token } : undefined;
    upstreams[name] = Object.freeze({ name, url: u.url, libraryPrefix: name === 'docker.io', ...(credentials ? { credentials } : {}) });
  }
  if (!upstreams[c.defaultUpstream]) {
    throw new ConfigError(`invalid config: defaultUpstream: "${c.defaultUpstream}" is not a configured upstream`);
  }
  const m = /^(.*):(\d+)$/.exec(c.listen)!;
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError('invalid config: listen: port out of range');
  return Object.freeze({ ...c, upstreams: Object.freeze(upstreams), host: m[1]!.replace(/^\[|\]$/g, ''), port });
}
