// Client authentication and authorisation on /v2/: Basic (htpasswd bcrypt) or Bearer (static node tokens),
// first-match rules per upstream and repository glob, and a per-address limit on failed attempts.
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import { BASIC_CHALLENGE, OciError } from '../oci/errors.js';
import { LocalAttempts, type AttemptLedger } from './attempts.js';

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

/** The highest bcrypt cost among these hashes (`$2b$12$...`: 12); 5 when there are none. */
function highestCost(hashes: Iterable<string>): number {
  let cost = 5;
  for (const h of hashes) {
    const m = /^\$2[abxy]?\$(\d\d)\$/.exec(h);
    if (m) cost = Math.max(cost, Number(m[1]));
  }
  return Math.min(cost, 31);
}

function tooMany(seconds: number): void {
  if (seconds > 0)
    throw new OciError('TOOMANYREQUESTS', { reason: 'too many failed authentication attempts from this address' }, undefined, {
      'retry-after': String(seconds),
    });
}

interface CompiledRule extends AccessRule {
  up: RegExp[];
  repo: RegExp[];
}

export class ClientAuth {
  private readonly rules: CompiledRule[];
  /** sha256(Authorization header) -> identity, so bcrypt runs once per credential and 5 minutes, not per request. */
  private readonly verified = new LRUCache<string, { name: string }>({ max: 10_000, ttl: 5 * 60_000 });
  /** Checks running now, by sha256(Authorization header) and address (checkOnce). */
  private readonly checking = new Map<string, Promise<string | undefined>>();
  private readonly attempts: AttemptLedger;
  /** A hash of the users' highest bcrypt cost, made once: a missing user costs what a real check costs. */
  private dummy: Promise<string> | undefined;

  /** `attempts`: where failed attempts are counted (default: this process; the cluster primary under --workers). */
  constructor(
    private readonly o: ClientAuthOptions,
    attempts?: AttemptLedger,
  ) {
    this.rules = o.rules.map((r) => ({ ...r, up: r.upstreams.map(glob), repo: r.repositories.map(glob) }));
    this.attempts = attempts ?? new LocalAttempts(o.maxFailures, o.failureWindowMs);
  }

  /** May anyone without credentials pull anything? (Then GET /v2/ answers 200 without credentials.) */
  get anonymousAllowed(): boolean {
    return this.rules.some((r) => r.action === 'allow' && r.who.includes('anonymous'));
  }

  /** Who sent this Authorization header; throws UNAUTHORIZED (with the challenge) or TOOMANYREQUESTS. */
  async authenticate(authorization: string | undefined, address: string): Promise<Identity> {
    if (!authorization) return 'anonymous';
    tooMany(this.attempts.refusedFor(address));
    const key = sha256(authorization);
    let who = this.verified.get(key);
    if (!who) {
      const name = await this.checkOnce(key, authorization, address);
      if (name === undefined) throw new OciError('UNAUTHORIZED', { reason: 'invalid credentials' }, undefined, CHALLENGE);
      this.verified.set(key, (who = { name }));
    }
    return { name: who.name, groups: this.o.groupsOf.get(who.name) ?? [] };
  }

  /**
   * One check per credential and address at a time (requests sent at once with it share the answer), reserved
   * with the attempt ledger before it runs, so distinct guesses sent at once count one each.
   */
  private checkOnce(key: string, authorization: string, address: string): Promise<string | undefined> {
    const slot = `${key} ${address}`;
    let p = this.checking.get(slot);
    if (!p) {
      p = (async () => {
        tooMany(await this.attempts.begin(address));
        let name: string | undefined;
        try {
          name = await this.check(authorization);
        } finally {
          this.attempts.end(address, name === undefined);
        }
        return name;
      })().finally(() => this.checking.delete(slot));
      this.checking.set(slot, p);
    }
    return p;
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
      this.dummy ??= bcrypt.hash('not a password', highestCost(this.o.users.values()));
      await bcrypt.compare(password, await this.dummy);
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
