// The effective config as YAML that loadConfig reads back to the same config (check-config); secrets are never printed.
import { stringify } from 'yaml';
import { BUILTIN_REALMS, BUILTIN_UPSTREAMS, type Config } from './schema.js';
import type { WarmEntry } from './warm.js';

const platformText = (p: { os: string; architecture: string; variant?: string }): string => [p.os, p.architecture, p.variant].filter(Boolean).join('/');
const two = (n: number): string => String(n).padStart(2, '0');

/** A warm entry in the form the `warm:` section takes (the schema turns it into schedules). */
function warmInput(e: WarmEntry): Record<string, unknown> {
  const s = e.schedule;
  return {
    name: e.name,
    refs: e.refs,
    platforms: e.selection.platforms ? e.selection.platforms.map(platformText) : 'all',
    compression: e.selection.compression,
    concurrency: e.concurrency,
    ...(s.kind === 'every' ? { every: `${s.ms}ms` } : { at: s.times.map((t) => `${two(t.hour)}:${two(t.minute)}`) }),
  };
}

/**
 * YAML for `check-config`: every key with its effective value (defaults included), to be fed back as --config.
 * Passwords, tokens and the admin token are left out and named in a comment: give them again through the
 * environment or a *File key (with the same environment, the printed file loads to the same config).
 */
export function configToYaml(config: Config): string {
  const { host: _host, port: _port, upstreams, warm, adminToken, clientAuth, ...rest } = config;
  const secrets: string[] = [];
  const ups: Record<string, Record<string, unknown>> = {};
  for (const u of Object.values(upstreams)) {
    const creds = u.credentials;
    const builtinRealms = BUILTIN_REALMS[u.name] ?? [];
    const sameRealms = (u.realms ?? []).length === builtinRealms.length && (u.realms ?? []).every((r, i) => r === builtinRealms[i]);
    if (config.builtinUpstreams && BUILTIN_UPSTREAMS[u.name] === u.url && !creds && sameRealms && !u.allowPrivate && !u.passthrough && !u.endpoints) continue;
    if (u.endpoints) {
      // A chain: each endpoint with its own credentials, realms and private ranges.
      ups[u.name] = {
        endpoints: u.endpoints.map((e, i) => {
          if (e.credentials?.password !== undefined) secrets.push(`upstreams.${u.name}.endpoints.${i}.password`);
          if (e.credentials?.token !== undefined) secrets.push(`upstreams.${u.name}.endpoints.${i}.token`);
          return {
            url: e.url,
            mirror: e.mirror,
            ...(e.credentials?.username !== undefined ? { username: e.credentials.username } : {}),
            ...(e.realms?.length ? { realms: [...e.realms] } : {}),
            ...(e.allowPrivate?.length ? { allowPrivate: [...e.allowPrivate] } : {}),
          };
        }),
      };
      continue;
    }
    ups[u.name] = {
      url: u.url,
      ...(creds?.username !== undefined ? { username: creds.username } : {}),
      ...(u.realms?.length ? { realms: [...u.realms] } : {}),
      ...(u.allowPrivate?.length ? { allowPrivate: [...u.allowPrivate] } : {}),
      ...(u.passthrough ? { clientCredentials: 'passthrough' } : {}),
    };
    if (creds?.password !== undefined) secrets.push(`upstreams.${u.name}.password`);
    if (creds?.token !== undefined) secrets.push(`upstreams.${u.name}.token`);
  }
  if (adminToken !== undefined) secrets.push('adminToken');
  const head = [
    '# stevedore effective configuration (stevedore check-config): usable as --config FILE.',
    // Names only: the bcrypt hashes and node tokens stay in their files and in memory.
    ...(clientAuth
      ? [`# auth: htpasswd users: ${[...clientAuth.users.keys()].join(', ') || 'none'}; node tokens: ${[...clientAuth.tokens.values()].join(', ') || 'none'}.`]
      : []),
    ...(secrets.length > 0
      ? [
          `# Secrets not printed: ${secrets.join(', ')}.`,
          '# Give them again via STEVEDORE_UPSTREAM_<NAME>_PASSWORD|TOKEN, STEVEDORE_ADMIN_TOKEN or passwordFile/tokenFile.',
        ]
      : []),
  ];
  return `${head.join('\n')}\n${stringify({ ...rest, upstreams: ups, warm: warm.map(warmInput) })}`;
}
