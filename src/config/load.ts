// Loading the config: defaults < YAML file < STEVEDORE_* env < flags, validated once (schema.ts) and frozen.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { Credentials, Endpoint } from '../upstream/types.js';
import { loadClientAuth } from './auth.js';
import { BUILTIN_REALMS, BUILTIN_UPSTREAMS, configSchema, type Config, type RawEndpoint, type RawUpstream, type Upstream } from './schema.js';

export type { Config, ConfigInput, Upstream } from './schema.js';
export { configSchema } from './schema.js';
export { parseByteSize } from './units.js';

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
  logFormat?: string;
  offline?: boolean;
  maxSize?: string;
  minFreeDisk?: string;
  upstreamRate?: string;
  tlsCert?: string;
  tlsKey?: string;
  workers?: string;
}

/** Settings that a flag and a STEVEDORE_* variable can both give as one string (numeric: digits become a number). */
const SCALAR_SETTINGS: [key: Exclude<keyof ConfigFlags, 'config' | 'upstream' | 'offline'>, numeric: boolean][] = [
  ['listen', false],
  ['data', false],
  ['tagTtl', true],
  ['logLevel', false],
  ['logFormat', false],
  ['maxSize', false],
  ['minFreeDisk', false],
  ['upstreamRate', false],
  ['tlsCert', false],
  ['tlsKey', false],
  ['workers', true],
];
/** tagTtl -> STEVEDORE_TAG_TTL */
const envName = (key: string): string => `STEVEDORE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

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

/** Every STEVEDORE_* variable stevedore reads (besides STEVEDORE_UPSTREAM_<NAME>_USERNAME|PASSWORD|TOKEN). */
export const ENV_VARS = [
  'STEVEDORE_CONFIG',
  'STEVEDORE_LISTEN',
  'STEVEDORE_DATA',
  'STEVEDORE_UPSTREAM',
  'STEVEDORE_TAG_TTL',
  'STEVEDORE_LOG_LEVEL',
  'STEVEDORE_LOG_FORMAT',
  'STEVEDORE_OFFLINE',
  'STEVEDORE_MAX_SIZE',
  'STEVEDORE_MIN_FREE_DISK',
  'STEVEDORE_UPSTREAM_RATE',
  'STEVEDORE_TLS_CERT',
  'STEVEDORE_TLS_KEY',
  'STEVEDORE_ADMIN_TOKEN',
  'STEVEDORE_WORKERS',
  // One line per failure; this adds the stack (for a bug report).
  'STEVEDORE_DEBUG',
  // Set by serve for its cluster workers.
  'STEVEDORE_WORKER_INDEX',
];

/** A STEVEDORE_* variable nothing reads is a typo or a leftover: refused like an unknown YAML key. */
function checkEnv(env: NodeJS.ProcessEnv, upstreamNames: string[]): void {
  const credentials = new Set(upstreamNames.flatMap((n) => ['USERNAME', 'PASSWORD', 'TOKEN'].map((k) => `STEVEDORE_UPSTREAM_${envKey(n)}_${k}`)));
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('STEVEDORE_') || ENV_VARS.includes(name) || credentials.has(name)) continue;
    // The test and bench harnesses' own variables (which binary to run): read by them, not by stevedore.
    if (/^STEVEDORE_([A-Z]+_BIN|BENCH_[A-Z_]+)$/.test(name)) continue;
    const hint = /^STEVEDORE_UPSTREAM_.+_(USERNAME|PASSWORD|TOKEN)$/.test(name)
      ? ': it names no configured upstream (STEVEDORE_UPSTREAM_<NAME>_USERNAME|PASSWORD|TOKEN, <NAME> upper-cased with non-alphanumerics as _)'
      : /^STEVEDORE_(SERVICE_|PORT)/.test(name)
        ? ' (a Kubernetes service link: set enableServiceLinks: false in the pod spec)'
        : `; known: ${ENV_VARS.join(', ')}`;
    throw new ConfigError(`invalid config: environment variable ${name} is not a stevedore setting${hint}`);
  }
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
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (e) {
      // The yaml library's message carries a code frame over several lines: its first line says where.
      throw new ConfigError(
        `invalid config: ${file}: ${String((e as Error).message)
          .split('\n')[0]!
          .replace(/:$/, '')}`,
      );
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`invalid config: ${file}: top level must be a mapping`);
    }
    raw = (parsed ?? {}) as Record<string, unknown>;
  }
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) raw[key] = value;
  };
  const num = (v: string | undefined): number | string | undefined => (v === undefined ? undefined : /^\d+$/.test(v) ? Number(v) : v);
  // Variables first, then flags: a flag wins over its STEVEDORE_* variable, both over the file.
  for (const [key, numeric] of SCALAR_SETTINGS) set(key, numeric ? num(env[envName(key)]) : env[envName(key)]);
  set('adminToken', env.STEVEDORE_ADMIN_TOKEN);
  if (env.STEVEDORE_OFFLINE !== undefined) raw.offline = /^(1|true|yes)$/i.test(env.STEVEDORE_OFFLINE);
  for (const [key, numeric] of SCALAR_SETTINGS) set(key, numeric ? num(flags[key]) : flags[key]);
  if (flags.offline) raw.offline = true;
  const upstreamArgs = [...(env.STEVEDORE_UPSTREAM?.split(',').filter(Boolean) ?? []), ...(flags.upstream ?? [])];
  const ups = { ...((raw.upstreams as Record<string, unknown> | undefined) ?? {}) };
  for (const arg of upstreamArgs) {
    const u = parseUpstreamFlag(arg.trim());
    const before = ups[u.name] as { endpoints?: unknown } | undefined;
    // A flag replaces a chain from the file (its credentials belonged to its endpoints); else keeps the credentials.
    ups[u.name] = before?.endpoints !== undefined ? { url: u.url } : { ...before, url: u.url };
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
  if (c.builtinUpstreams)
    for (const [name, url] of Object.entries(BUILTIN_UPSTREAMS)) all[name] = { url, realms: BUILTIN_REALMS[name], clientCredentials: 'config' };
  for (const [name, u] of Object.entries(c.upstreams)) all[name] = u;
  checkEnv(env, Object.keys(all));
  for (const [name, u] of Object.entries(all)) upstreams[name] = buildUpstream(name, u, env);
  if (!upstreams[c.defaultUpstream]) {
    throw new ConfigError(`invalid config: defaultUpstream: "${c.defaultUpstream}" is not a configured upstream`);
  }
  if ((c.tlsCert === undefined) !== (c.tlsKey === undefined)) throw new ConfigError('invalid config: tlsCert and tlsKey go together (--tls-cert, --tls-key)');
  for (const [key, file] of [
    ['tlsCert', c.tlsCert],
    ['tlsKey', c.tlsKey],
  ] as const)
    if (file !== undefined) readSecretFile(file, key);
  const clientAuth = c.auth ? loadClientAuth(c.auth, (msg) => new ConfigError(`invalid config: ${msg}`)) : undefined;
  const m = /^(.*):(\d+)$/.exec(c.listen)!;
  const port = Number(m[2]);
  if (port > 65535) throw new ConfigError('invalid config: listen: port out of range');
  return Object.freeze({
    ...c,
    upstreams: Object.freeze(upstreams),
    ...(clientAuth ? { clientAuth } : {}),
    host: m[1]!.replace(/^\[|\]$/g, ''),
    port,
  });
}

/** One endpoint's credentials: env (STEVEDORE_UPSTREAM_<NAME>_*, origin endpoints only) over files over the config. */
function credentialsOf(e: Omit<RawEndpoint, 'url' | 'mirror'>, key: string, env: Record<string, string | undefined>): Credentials | undefined {
  const username = env.USERNAME ?? e.username;
  const password = env.PASSWORD ?? (e.passwordFile ? readSecretFile(e.passwordFile, `${key}.passwordFile`) : e.password);
  const token = env.TOKEN ?? (e.tokenFile ? readSecretFile(e.tokenFile, `${key}.tokenFile`) : e.token);
  return username !== undefined || token !== undefined ? { username, password, token } : undefined;
}

/** The key of one endpoint of a chain (circuit breaker, token cache, metrics): docker.io@site-cache:5000. */
function endpointName(name: string, url: string): string {
  const u = new URL(url);
  return `${name}@${u.host}${u.pathname === '/' ? '' : u.pathname}`;
}

/**
 * Realms and private ranges of one URL: as configured; a built-in's known realms only while its own URL is used
 * (they belong to the built-in's host).
 */
function guards(name: string, url: string, e: Pick<RawEndpoint, 'realms' | 'allowPrivate'>): Pick<Upstream, 'realms' | 'allowPrivate'> {
  const realms = e.realms ?? (BUILTIN_UPSTREAMS[name] === url ? BUILTIN_REALMS[name] : undefined);
  return {
    ...(realms?.length ? { realms: Object.freeze([...realms]) } : {}),
    ...(e.allowPrivate?.length ? { allowPrivate: Object.freeze([...e.allowPrivate]) } : {}),
  };
}

/**
 * `url:` is one endpoint named like the upstream (so breaker, token cache and metrics keep the upstream's name);
 * `endpoints:` is a chain, each endpoint its own key, credentials and realms. Environment credentials go to the
 * origin endpoints (those without mirror: true), never to a mirror.
 */
function buildUpstream(name: string, u: RawUpstream, environ: NodeJS.ProcessEnv): Upstream {
  const k = `STEVEDORE_UPSTREAM_${envKey(name)}`;
  const env = { USERNAME: environ[`${k}_USERNAME`], PASSWORD: environ[`${k}_PASSWORD`], TOKEN: environ[`${k}_TOKEN`] };
  const libraryPrefix = name === 'docker.io';
  if (!u.endpoints) {
    const credentials = credentialsOf(u, `upstreams.${name}`, env);
    if (credentials && u.clientCredentials === 'passthrough')
      throw new ConfigError(`invalid config: upstreams.${name}: clientCredentials: passthrough uses each client's credentials; remove its own`);
    return Object.freeze({
      name,
      url: u.url!,
      libraryPrefix,
      ...(credentials ? { credentials } : {}),
      ...guards(name, u.url!, u),
      ...(u.clientCredentials === 'passthrough' ? { passthrough: true } : {}),
    });
  }
  if ((env.USERNAME ?? env.TOKEN) !== undefined && u.endpoints.every((e) => e.mirror)) {
    throw new ConfigError(
      `invalid config: upstreams.${name}: ${k}_* credentials are set but every endpoint is a mirror (credentials go to origin endpoints only)`,
    );
  }
  const endpoints: Endpoint[] = u.endpoints.map((e, i) => {
    const credentials = credentialsOf(e, `upstreams.${name}.endpoints.${i}`, e.mirror ? {} : env);
    return Object.freeze({
      name: endpointName(name, e.url),
      url: e.url,
      libraryPrefix,
      mirror: e.mirror,
      ...(credentials ? { credentials } : {}),
      ...guards(name, e.url, e),
    });
  });
  // The upstream's own url is its first origin endpoint (for display); it carries no credentials of its own.
  const origin = endpoints.find((e) => !e.mirror) ?? endpoints[0]!;
  return Object.freeze({ name, url: origin.url, libraryPrefix, endpoints: Object.freeze(endpoints) });
}
