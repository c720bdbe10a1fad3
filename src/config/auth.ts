// The `auth:` section: who may pull through stevedore. Schema, and loading the htpasswd and token files it names.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const ruleSchema = z.strictObject({
  /** User names, `group:<name>`, `anonymous` (no credentials) or `*` (anyone who authenticated). */
  who: z.array(z.string().min(1)).min(1),
  /** Globs over upstream names (`*` matches anything); default every upstream. */
  upstreams: z.array(z.string().min(1)).min(1).default(['*']),
  /** Globs over repository names as the upstream knows them (`library/alpine`; `*` also spans `/`). */
  repositories: z.array(z.string().min(1)).min(1).default(['*']),
  action: z.enum(['allow', 'deny']).default('allow'),
});

export const authSchema = z
  .strictObject({
    /** htpasswd file with bcrypt entries (`htpasswd -B`); re-read at startup. */
    htpasswd: z.string().min(1).optional(),
    /** Static bearer tokens for nodes: one `<name> <token>` per line (`#` comments). */
    tokensFile: z.string().min(1).optional(),
    /** Groups of user / token names, used as `group:<name>` in rules. */
    groups: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
    /** First match wins; nothing matches: denied. */
    rules: z.array(ruleSchema).default([]),
    /** Failed authentications per source address before it is answered 429 for `failureWindow` seconds. */
    maxFailures: z.number().int().positive().default(10),
    failureWindow: z.number().int().positive().default(60),
  })
  .optional();

export type AuthInput = z.output<typeof authSchema>;
export type AuthRule = z.output<typeof ruleSchema>;

/** What the HTTP layer needs to authenticate and authorise clients, loaded once (secrets stay in memory only). */
export interface ClientAuthData {
  /** user -> bcrypt hash */
  users: ReadonlyMap<string, string>;
  /** sha256(token) hex -> name */
  tokens: ReadonlyMap<string, string>;
  /** name -> its groups */
  groupsOf: ReadonlyMap<string, readonly string[]>;
  rules: readonly AuthRule[];
  maxFailures: number;
  failureWindowMs: number;
}

export const tokenKey = (token: string): string => createHash('sha256').update(token).digest('hex');

function lines(path: string, key: string, fail: (m: string) => Error): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw fail(`auth.${key}: cannot read ${path}: ${(e as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Reads the files `auth:` names; errors name the file and line, never a secret. */
export function loadClientAuth(a: NonNullable<AuthInput>, fail: (m: string) => Error): ClientAuthData {
  const users = new Map<string, string>();
  if (a.htpasswd) {
    lines(a.htpasswd, 'htpasswd', fail).forEach((l, i) => {
      const colon = l.indexOf(':');
      const hash = l.slice(colon + 1);
      if (colon <= 0 || !/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
        throw fail(`auth.htpasswd: ${a.htpasswd} entry ${i + 1} is not "user:<bcrypt hash>" (write it with htpasswd -B)`);
      }
      users.set(l.slice(0, colon), hash);
    });
  }
  const tokens = new Map<string, string>();
  if (a.tokensFile) {
    lines(a.tokensFile, 'tokensFile', fail).forEach((l, i) => {
      const m = /^(\S+)\s+(\S{16,})$/.exec(l);
      if (!m) throw fail(`auth.tokensFile: ${a.tokensFile} line ${i + 1} is not "<name> <token of at least 16 characters>"`);
      tokens.set(tokenKey(m[2]!), m[1]!);
    });
  }
  const groupsOf = new Map<string, string[]>();
  for (const [g, members] of Object.entries(a.groups)) for (const m of members) groupsOf.set(m, [...(groupsOf.get(m) ?? []), g]);
  return { users, tokens, groupsOf, rules: a.rules, maxFailures: a.maxFailures, failureWindowMs: a.failureWindow * 1000 };
}
