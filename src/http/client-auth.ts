// Client authentication and authorisation on /v2/: Basic (htpasswd bcrypt) or Bearer (static node tokens),
// first-match rules per upstream and repository glob, and a per-address limit on failed attempts.
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import { BASIC_CHALLENGE, OciError } from '../oci/errors.js';

export interface AccessRule {
  who: readonly string[];
  upstreams: readonly string[];
  repositories: readonly string[];
  action: 'allow' | 'deny';
}

/** What config/auth.ts loads from the `auth:` section (the same shape; http/ does not import config/). */
export interface ClientAuthOptions {
  /** user -> bcrypt hash */
  users: ReadonlyMap<string, string>;
  /** sha256(token) hex -> name */
  tokens: ReadonlyMap<string, string>;
  groupsOf: ReadonlyMap<string, readonly string[]>;
  rules: readonly AccessRule[];
  maxFailures: number;
  failureWindowMs: number;
}

/** Who is asking: a user or token name with its groups, or nobody (no credentials). */
export type Identity = { name: string; groups: readonly string[] } | 'anonymous';

export const CHALLENGE = BASIC_CHALLENGE;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

interface CompiledRule extends AccessRule {
  up: RegExp[];
  repo: RegExp[];
}

export class ClientAuth {
  private readonly rules: CompiledRule[];
  /** sha256(Authorization header) -> identity, so bcrypt runs once per credential and 5 minutes, not per request. */
  private readonly verified = new LRUCache<string, { name: string }>({ max: 10_000, ttl: 5 * 60_000 });
  private readonly failures: LRUCache<string, { n: number }>;

  constructor(private readonly o: ClientAuthOptions) {
    this.rules = o.rules.map((r) => ({ ...r, up: r.upstreams.map(glob), repo: r.repositories.map(glob) }));
    this.failures = new LRUCache({ max: 50_000, ttl: o.failureWindowMs });
  }

  /** May anyone without credentials pull anything? (Then GET /v2/ answers 200 without credentials.) */
  get anonymousAllowed(): boolean {
    return this.rules.some((r) => r.action === 'allow' && r.who.includes('anonymous'));
  }

  /** Who sent this Authorization header; throws UNAUTHORIZED (with the challenge) or TOOMANYREQUESTS. */
  async authenticate(authorization: string | undefined, address: string): Promise<Identity> {
    if (!authorization) return 'anonymous';
    const failed = this.failures.get(address);
    if (failed && failed.n >= this.o.maxFailures) {
      const retry = Math.ceil((this.failures.getRemainingTTL(address) || this.o.failureWindowMs) / 1000);
      throw new OciError('TOOMANYREQUESTS', { reason: 'too many failed authentication attempts from this address' }, undefined, {
        'retry-after': String(retry),
      });
    }
    const key = sha256(authorization);
    let who = this.verified.get(key);
    if (!who) {
      const name = await this.check(authorization);
      if (name === undefined) {
        // Counted per source address; the window restarts with each failure.
        this.failures.set(address, { n: (failed?.n ?? 0) + 1 });
        throw new OciError('UNAUTHORIZED', { reason: 'invalid credentials' }, undefined, CHALLENGE);
      }
      this.verified.set(key, (who = { name }));
    }
    return { name: who.name, groups: this.o.groupsOf.get(who.name) ?? [] };
  }

  /** The name these credentials prove, or undefined. A token is accepted as Bearer, or as a Basic password. */
  private async check(authorization: string): Promise<string | undefined> {
    const m = /^(Basic|Bearer)\s+(\S+)\s*$/i.exec(authorization);
    if (!m) return undefined;
    if (m[1]!.toLowerCase() === 'bearer') return this.o.tokens.get(sha256(m[2]!));
    const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const byToken = this.o.tokens.get(sha256(password));
    if (byToken !== undefined) return byToken;
    const hash = this.o.users.get(user);
    if (hash === undefined) {
      // Same cost as a real check: a missing user is not told apart by timing.
      await bcrypt.compare(password, '$2b$05$hhw1xa9k5qW1.haLt6HryOoAu.VjhCyY48jFKTKW2/EQoQTug7Cv.');
      return undefined;
    }
    return (await bcrypt.compare(password, hash)) ? user : undefined;
  }

  /** First matching rule decides; none matches: denied. */
  allows(who: Identity, upstream: string, repo: string): boolean {
    for (const r of this.rules) {
      const matchesWho =
        who === 'anonymous'
          ? r.who.includes('anonymous')
          : r.who.includes('*') || r.who.includes(who.name) || who.groups.some((g) => r.who.includes(`group:${g}`));
      if (matchesWho && r.up.some((g) => g.test(upstream)) && r.repo.some((g) => g.test(repo))) return r.action === 'allow';
    }
    return false;
  }

  /** Throws UNAUTHORIZED (anonymous: log in) or DENIED (authenticated, but the rules refuse) unless allowed. */
  authorize(who: Identity, upstream: string, repo: string): void {
    if (this.allows(who, upstream, repo)) return;
    if (who === 'anonymous') throw new OciError('UNAUTHORIZED', { reason: 'authentication required', upstream, repo }, undefined, CHALLENGE);
    throw new OciError('DENIED', { reason: 'the access rules do not allow this user to pull this repository', upstream, repo });
  }
}
