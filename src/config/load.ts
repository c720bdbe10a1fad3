// Loading the config: defaults < YAML file < STEVEDORE_* env < flags, validated once (schema.ts) and frozen.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { loadClientAuth } from './auth.js';
import { BUILTIN_REALMS, BUILTIN_UPSTREAMS, configSchema, type Config, type RawUpstream, type Upstream } from './schema.js';

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
  offline?: boolean;
  maxSize?: string;
  minFreeDisk?: string;
  upstreamRate?: string;
  tlsCert?: string;
  tlsKey?: string;
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
  set('tlsCert', env.STEVEDORE_TLS_CERT);
  set('tlsKey', env.STEVEDORE_TLS_KEY);
  set('adminToken', env.STEVEDORE_ADMIN_TOKEN);
  if (env.STEVEDORE_OFFLINE !== undefined) raw.offline = /^(1|true|yes)$/i.test(env.STEVEDORE_OFFLINE);
  set('listen', flags.listen);
  set('maxSize', flags.maxSize);
  set('minFreeDisk', flags.minFreeDisk);
  set('upstreamRate', flags.upstreamRate);
  set('tlsCert', flags.tlsCert);
  set('tlsKey', flags.tlsKey);
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
  if (c.builtinUpstreams)
    for (const [name, url] of Object.entries(BUILTIN_UPSTREAMS)) all[name] = { url, realms: BUILTIN_REALMS[name], clientCredentials: 'config' };
  for (const [name, u] of Object.entries(c.upstreams)) {
    // Overriding a built-in's URL elsewhere drops its known realms (they belong to the built-in's host).
    const builtin = all[name];
    all[name] = { ...u, realms: u.realms ?? (builtin && builtin.url === u.url ? builtin.realms : undefined) };
  }
  for (const [name, u] of Object.entries(all)) {
    const k = `STEVEDORE_UPSTREAM_${envKey(name)}`;
    const username = env[`${k}_USERNAME`] ?? u.username;
    const password = env[`${k}_PASSWORD`] ?? (u.passwordFile ? readSecretFile(u.passwordFile, `upstreams.${name}.passwordFile`) : u.password);
    const token = env[`${k}_TOKEN`] ?? (u.tokenFile ? readSecretFile(u.tokenFile, `upstreams.${name}.tokenFile`) : u.token);
    const credentials = username !== undefined || token !== undefined ? { username, password, token } : undefined;
    if (credentials && u.clientCredentials === 'passthrough')
      throw new ConfigError(`invalid config: upstreams.${name}: clientCredentials: passthrough uses each client's credentials; remove its own`);
    upstreams[name] = Object.freeze({
      name,
      url: u.url,
      libraryPrefix: name === 'docker.io',
      ...(credentials ? { credentials } : {}),
      ...(u.realms?.length ? { realms: Object.freeze([...u.realms]) } : {}),
      ...(u.allowPrivate?.length ? { allowPrivate: Object.freeze([...u.allowPrivate]) } : {}),
      ...(u.clientCredentials === 'passthrough' ? { passthrough: true } : {}),
    });
  }
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
