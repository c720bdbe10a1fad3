// Registry auth: WWW-Authenticate challenges, the bearer token flow, a per-scope token cache, realm validation.
import { LRUCache } from 'lru-cache';
import { getDomain } from 'tldts';
import type { Upstream } from './types.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (RFC 7235 auth-param list). */
export function parseChallenge(header: string): Challenge | undefined {
  const m = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  for (const p of m[2]!.matchAll(re)) params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  return { scheme: m[1]!.toLowerCase(), params };
}

/**
 * Registrable domain ("eTLD+1") of a host by the Public Suffix List, private suffixes included (github.io,
 * s3.amazonaws.com: every tenant is its own site); an IP address or single label is its own domain.
 */
export function registrableDomain(hostname: string): string {
  const h = hostname
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/^\[|\]$/g, '');
  return getDomain(h, { allowPrivateDomains: true }) ?? h;
}

/**
 * A realm may only be on the upstream's registrable domain, with https unless the upstream itself is http:
 * otherwise a hostile or compromised upstream could make us send credentials anywhere (CVE-2026-33540 class).
 */
export function realmAllowed(upstreamUrl: string, realm: string): boolean {
  let r: URL;
  let u: URL;
  try {
    r = new URL(realm);
    u = new URL(upstreamUrl);
  } catch {
    return false;
  }
  if (r.username || r.password) return false;
  if (r.protocol !== 'https:' && !(r.protocol === 'http:' && u.protocol === 'http:')) return false;
  return registrableDomain(r.hostname) === registrableDomain(u.hostname);
}

/** The upstream's auth setup is refused (hostile realm), or its token endpoint refused our credentials: retrying cannot help. */
export class AuthRefusedError extends Error {
  override name = 'AuthRefusedError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export type TokenFetcher = (url: string, headers: Record<string, string>) => Promise<{ status: number; json: unknown }>;

export class TokenAuth {
  private readonly tokens = new LRUCache<string, { header: string; expiresAt: number }>({ max: 10_000 });

  constructor(
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  /** The Authorization header to send before any challenge (cached token, or a static token). */
  cached(upstream: Upstream, scope: string): string | undefined {
    const t = this.tokens.get(`${upstream.name}|${scope}`);
    if (t && t.expiresAt > this.now()) return t.header;
    if (upstream.credentials?.token) return `Bearer ${upstream.credentials.token}`;
    return undefined;
  }

  /** Answers a 401 challenge; returns the header to retry with, or undefined when it cannot be answered. */
  async answer(upstream: Upstream, wwwAuthenticate: string, scope: string): Promise<string | undefined> {
    const ch = parseChallenge(wwwAuthenticate);
    const creds = upstream.credentials;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (!creds?.username) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) return undefined;
    if (!realmAllowed(upstream.url, ch.params.realm)) {
      throw new AuthRefusedError(`token realm ${ch.params.realm} is not on the registrable domain of ${upstream.url}; refused`);
    }
    const url = new URL(ch.params.realm);
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    url.searchParams.set('scope', ch.params.scope ?? scope);
    const headers: Record<string, string> = {};
    if (creds?.username) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password ?? creds.token ?? ''}`).toString('base64')}`;
    const res = await this.fetchToken(url.toString(), headers);
    if (res.status === 401 || res.status === 403) throw new AuthRefusedError(`token endpoint refused the credentials (${res.status})`, res.status);
    if (res.status !== 200 || typeof res.json !== 'object' || res.json === null) {
      throw new Error(`token endpoint answered ${res.status}`);
    }
    const j = res.json as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const token = typeof j.token === 'string' ? j.token : typeof j.access_token === 'string' ? j.access_token : undefined;
    if (!token) throw new Error('token endpoint returned no token');
    // The spec's default lifetime is 60 s; renew a little early.
    const ttl = typeof j.expires_in === 'number' && j.expires_in > 0 ? j.expires_in : 60;
    const header = `Bearer ${token}`;
    this.tokens.set(`${upstream.name}|${scope}`, { header, expiresAt: this.now() + ttl * 900 });
    return header;
  }
}
