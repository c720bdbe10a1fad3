// Which foreign URLs may be contacted, and how: the configured rules, URL shape checks, mirror templates.
import type { BlockList } from 'node:net';
import type { ForeignRule } from '../config/foreign.js';
import { cidrList } from '../upstream/cidr.js';
import type { Digest } from '../oci/digest.js';

export type Action = 'redirect' | 'fetch' | 'deny';

export interface Decision {
  action: Action;
  /** Index of the rule that decided, -1 for the default deny. */
  rule: number;
  /** fetch: keep the verified blob in the CAS. */
  cache: boolean;
  /** Private ranges this rule may reach (empty: public addresses only). */
  allowPrivate: BlockList;
  /** Why a URL is denied, for the client's error detail and the log. */
  reason?: string;
}

/**
 * A URL from a manifest is attacker-controlled: only http(s), no userinfo (credentials in a URL would be
 * sent to that host, or hide the real host from a reader), no fragment. Returns the parsed URL or why not.
 */
export function checkUrlShape(raw: string): URL | string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a valid URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `scheme ${u.protocol} is not allowed (http and https only)`;
  if (u.username !== '' || u.password !== '') return 'URLs with userinfo are not allowed';
  if (raw.includes('#')) return 'URLs with a fragment are not allowed';
  if (u.hostname === '') return 'URL has no host';
  return u;
}

const escape = (s: string): string => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/**
 * Glob to an anchored RegExp. With "://" the glob covers the whole URL: in the scheme://host[:port] part `*`
 * stays within the authority (no "/", "?", "#", "@"), so "https://*.example.com/*" cannot match
 * "https://evil.test/.example.com/"; in the path part `*` matches anything ("/*" = any path under it).
 * Without "://" the glob covers host[:port] only.
 */
export function globToRegExp(glob: string): RegExp {
  const sep = glob.indexOf('://');
  // Hosts are case-insensitive (URL lower-cases them), paths are not.
  if (sep < 0) return new RegExp(`^${glob.toLowerCase().split('*').map(escape).join('[^/?#@]*')}$`);
  const pathAt = glob.indexOf('/', sep + 3);
  const authority = (pathAt < 0 ? glob : glob.slice(0, pathAt)).toLowerCase();
  const path = pathAt < 0 ? '' : glob.slice(pathAt);
  const a = authority.split('*').map(escape).join('[^/?#@]*');
  const p = path.split('*').map(escape).join('.*');
  // A bare "https://host" glob means the whole origin.
  return new RegExp(`^${a}${pathAt < 0 ? '(/.*)?' : p}$`);
}

interface Compiled {
  test: (u: URL) => boolean;
  rule: ForeignRule;
  allowPrivate: BlockList;
}

export class ForeignPolicy {
  private readonly rules: Compiled[];

  constructor(rules: readonly ForeignRule[]) {
    this.rules = rules.map((rule) => {
      const allowPrivate = cidrList(rule.allowPrivate);
      if (rule.regex !== undefined) {
        const re = new RegExp(rule.regex);
        return { rule, allowPrivate, test: (u: URL) => re.test(u.href) };
      }
      const re = globToRegExp(rule.match!);
      const hostOnly = !rule.match!.includes('://');
      return { rule, allowPrivate, test: (u: URL) => re.test(hostOnly ? u.host : u.href) };
    });
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  /** The first matching rule decides; malformed URLs and URLs no rule matches are denied. */
  decide(raw: string): Decision {
    const u = checkUrlShape(raw);
    if (typeof u === 'string') return deny(u);
    for (const [i, c] of this.rules.entries()) {
      if (!c.test(u)) continue;
      const d: Decision = { action: c.rule.action, rule: i, cache: c.rule.cache, allowPrivate: c.allowPrivate };
      if (c.rule.action === 'deny') d.reason = `denied by foreign.rules[${i}]`;
      return d;
    }
    return deny(this.rules.length === 0 ? 'no foreign.rules configured (default: deny all)' : 'no foreign.rules entry matches this URL');
  }
}

const EMPTY = cidrList([]);
function deny(reason: string): Decision {
  return { action: 'deny', rule: -1, cache: false, allowPrivate: EMPTY, reason };
}

/**
 * An operator prefix mirror for many digests: "{digest}", "{algorithm}" and "{encoded}" are replaced;
 * without a placeholder the digest is appended as one more path segment.
 */
export function expandMirror(template: string, digest: Digest): string {
  const [algorithm = '', encoded = ''] = digest.split(':');
  if (/\{(digest|algorithm|encoded)\}/.test(template)) {
    return template.replaceAll('{digest}', digest).replaceAll('{algorithm}', algorithm).replaceAll('{encoded}', encoded);
  }
  return template.endsWith('/') ? `${template}${digest}` : `${template}/${digest}`;
}
