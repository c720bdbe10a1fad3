// Registry auth: WWW-Authenticate challenges, the bearer token flow, a per-scope token cache, realm validation.
import { LRUCache } from 'lru-cache';
import type { Upstream } from './types.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * The longest WWW-Authenticate challenge we read. Real ones are 100-300 characters (realm, service, a scope or
 * two; under 1 KiB); a longer one is refused as an unusable answer. The parser is linear anyway: the regex it
 * replaced rescanned from every offset, 0.3 s of blocked event loop for 16,000 letters and 4.8 s for 64 KB.
 */
export const CHALLENGE_MAX = 4096;

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
/** RFC 9110 tchar: the characters of a token (an auth-scheme or auth-param name). */
const isTokenChar = (c: string | undefined): boolean => c !== undefined && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(c);

/**
 * Parses `Bearer realm="...",service="...",scope="..."` (RFC 9110 auth-param list) in one pass: names are
 * case-insensitive, quoted values may hold commas and \-escapes, an unquoted value runs to the next space or
 * comma, and anything else (a bare word, a stray character, an unterminated quoted value) is skipped.
 * Undefined for no scheme, or for a challenge longer than CHALLENGE_MAX.
 */
export function parseChallenge(header: string): Challenge | undefined {
  if (header.length > CHALLENGE_MAX) return undefined;
  let i = 0;
  const skip = (what: (c: string | undefined) => boolean): void => {
    while (i < header.length && what(header[i])) i++;
  };
  skip(isSpace);
  const schemeAt = i;
  skip((c) => c !== undefined && /[A-Za-z]/.test(c));
  if (i === schemeAt) return undefined;
  const scheme = header.slice(schemeAt, i).toLowerCase();
  const params: Record<string, string> = {};
  while (i < header.length) {
    skip((c) => isSpace(c) || c === ',');
    const nameAt = i;
    skip(isTokenChar);
    if (i === nameAt) {
      i++; // a character no parameter starts with
      continue;
    }
    const name = header.slice(nameAt, i).toLowerCase();
    skip(isSpace);
    if (header[i] !== '=') continue; // a bare word
    i++;
    skip(isSpace);
    if (header[i] !== '"') {
      const valueAt = i;
      skip((c) => !isSpace(c) && c !== ',');
      params[name] = header.slice(valueAt, i);
      continue;
    }
    let value = '';
    for (i++; i < header.length && header[i] !== '"'; i++) value += header[i] === '\\' ? (header[++i] ?? '') : header[i];
    if (i >= header.length) break; // unterminated: not a value
    i++;
    params[name] = value;
  }
  return { scheme, params };
}

/**
 * A realm may only be the upstream's own origin (scheme, host and port) or one the operator listed in the
 * upstream's `realms:` (built-ins carry their known ones, e.g. https://auth.docker.io for docker.io): otherwise a
 * hostile or compromised upstream could make us send credentials anywhere (CVE-2026-33540 class), including
 * another port of its own address or another tenant of a shared domain.
 */
export function realmAllowed(upstream: Pick<Upstream, 'url' | 'realms'>, realm: string): boolean {
  let r: URL;
  let u: URL;
  try {
    r = new URL(realm);
    u = new URL(upstream.url);
  } catch {
    return false;
  }
  if (r.username || r.password) return false;
  if (r.protocol !== 'https:' && r.protocol !== 'http:') return false;
  if (r.origin === u.origin) return true;
  return (upstream.realms ?? []).some((listed) => {
    try {
      const l = new URL(listed);
      return l.origin === r.origin && r.pathname.startsWith(l.pathname);
    } catch {
      return false;
    }
  });
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

/**
 * Bytes the token cache holds (tokens and their keys, counted as string lengths) for all upstreams and scopes.
 * Real tokens are a few KiB, so the 10,000 scopes of the entry bound fit; a realm answering tokens of the
 * largest size we read (64 KiB) fills it at about 500 scopes instead of holding 10,000 x 64 KiB.
 */
export const TOKEN_CACHE_BYTES = 32 << 20;

export class TokenAuth {
  private readonly tokens = new LRUCache<string, { header: string; expiresAt: number }>({
    max: 10_000,
    maxSize: TOKEN_CACHE_BYTES,
    sizeCalculation: (v, key) => v.header.length + key.length,
  });

  constructor(
    private readonly fetchToken: TokenFetcher,
    private readonly now: () => number = Date.now,
  ) {}

  /** What the cached tokens hold, in bytes (bounded by TOKEN_CACHE_BYTES). */
  get cachedBytes(): number {
    return this.tokens.calculatedSize;
  }

  /** The Authorization header to send before any challenge (cached token, or a static token). */
  cached(upstream: Upstream, scope: string): string | undefined {
    const t = this.tokens.get(`${upstream.tokenKey ?? upstream.name}|${scope}`);
    if (t && t.expiresAt > this.now()) return t.header;
    if (upstream.credentials?.token) return `Bearer ${upstream.credentials.token}`;
    return undefined;
  }

  /** Answers a 401 challenge; returns the header to retry with, or undefined when it cannot be answered. */
  async answer(upstream: Upstream, wwwAuthenticate: string, scope: string): Promise<string | undefined> {
    if (wwwAuthenticate.length > CHALLENGE_MAX) {
      throw new AuthRefusedError(`the upstream's WWW-Authenticate challenge is ${wwwAuthenticate.length} characters, longer than ${CHALLENGE_MAX}; refused`);
    }
    const ch = parseChallenge(wwwAuthenticate);
    const creds = upstream.credentials;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (!creds?.username) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password ?? ''}`).toString('base64')}`;
    }
    if (ch.scheme !== 'bearer' || !ch.params.realm) return undefined;
    if (!realmAllowed(upstream, ch.params.realm)) {
      throw new AuthRefusedError(`token realm ${ch.params.realm} is neither ${upstream.url} itself nor listed in the upstream's realms; refused`);
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
    this.tokens.set(`${upstream.tokenKey ?? upstream.name}|${scope}`, { header, expiresAt: this.now() + ttl * 900 });
    return header;
  }
}
