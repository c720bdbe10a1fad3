// SSRF-safe HTTP to URLs taken from manifests: rule check and address check on every hop, pinned DNS, no credentials.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { Agent, request } from 'undici';
import type { UpstreamResponse } from './types.js';

/** Not contacted: the rules or the address guard refused this URL (or a redirect hop to it). */
export class RefusedError extends Error {
  override name = 'RefusedError';
  constructor(
    message: string,
    readonly url: string,
  ) {
    super(message);
  }
}

/** Contacted, and it failed: connection, timeout, status, too many redirects. */
export class FetchError extends Error {
  override name = 'FetchError';
  constructor(
    message: string,
    readonly url: string,
  ) {
    super(message);
  }
}

export interface SafeFetchOptions {
  method: 'GET' | 'HEAD';
  range?: string;
  /** Asked for the URL and for every redirect hop: the private ranges this URL may reach, or why it is refused. */
  authorize(url: URL): { allowPrivate: BlockList } | { refused: string };
  timeouts: { connect: number; headers: number; bodyIdle: number };
  maxRedirects: number;
  /** DNS resolver (tests); default: the system resolver, every address. */
  resolve?: (hostname: string) => Promise<LookupAddress[]>;
}

export interface SafeResponse extends UpstreamResponse {
  /** The URL that answered (after redirects). */
  url: string;
}

// Never reached unless a rule lists the range in allowPrivate: loopback, RFC 1918, CGNAT, link-local (cloud
// metadata at 169.254.169.254), multicast, unspecified/"this network", reserved, benchmarking and documentation
// ranges. IPv6 forms that carry an IPv4 address are checked by the IPv4 inside (embeddedIPv4), except those whose
// IPv4 cannot be located or decoded, blocked whole: the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215; a site's
// own translator, any prefix length within it) and Teredo 2001::/32 (server and obfuscated client IPv4 inside).
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  BLOCKED.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 32],
  ['2001:2::', 48],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  BLOCKED.addSubnet(net, prefix, 'ipv6');

/** The 8 groups of an IPv6 address (accepts "::" and a trailing dotted quad). */
function ipv6Groups(address: string): number[] {
  let a = address.toLowerCase().split('%')[0]!;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : 8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16) || 0);
}

/**
 * An IPv4 address carried inside an IPv6 one (mapped ::ffff:0:0/96, translated ::ffff:0:0:0/96, NAT64
 * 64:ff9b::/96, 6to4 2002::/16), else undefined.
 */
function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return v4(g[6]!, g[7]!);
  if (g.slice(0, 4).every((x) => x === 0) && g[4] === 0xffff && g[5] === 0) return v4(g[6]!, g[7]!);
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return v4(g[6]!, g[7]!);
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!);
  return undefined;
}

/** Why this address must not be contacted under `allow`, or undefined when it may. */
export function addressRefusal(address: string, allow: BlockList): string | undefined {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  const inner = family === 'ipv6' ? embeddedIPv4(address) : undefined;
  if (allow.check(address, family) || (inner !== undefined && allow.check(inner, 'ipv4'))) return undefined;
  if (BLOCKED.check(address, family) || (inner !== undefined && BLOCKED.check(inner, 'ipv4'))) {
    return `${address} is a loopback, private, link-local, multicast or unspecified address (allow it with allowPrivate on the rule)`;
  }
  return undefined;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Resolves the host and checks EVERY address; the connection then uses exactly these (no second lookup to rebind). */
export async function resolveChecked(u: URL, allow: BlockList, o: Pick<SafeFetchOptions, 'resolve' | 'timeouts'>): Promise<LookupAddress[]> {
  const host = u.hostname.replace(/^\[|\]$/g, '');
  let addrs: LookupAddress[];
  if (isIP(host) !== 0) addrs = [{ address: host, family: isIP(host) }];
  else {
    const resolve = o.resolve ?? ((h: string) => dnsLookup(h, { all: true, verbatim: true }));
    try {
      addrs = await withTimeout(resolve(host), o.timeouts.connect, `DNS lookup of ${host}`);
    } catch (e) {
      throw new FetchError(`cannot resolve ${host}: ${(e as Error).message}`, u.href);
    }
  }
  if (addrs.length === 0) throw new FetchError(`${host} has no addresses`, u.href);
  for (const a of addrs) {
    const why = addressRefusal(a.address, allow);
    if (why) throw new RefusedError(`refused: ${host} resolves to ${why}`, u.href);
  }
  return addrs;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A connect-time lookup that answers exactly these (already checked) addresses. */
export function pinnedLookup(addrs: LookupAddress[]) {
  return (_host: string, options: { all?: boolean } | number | undefined, cb: LookupCallback): void => {
    if (typeof options === 'object' && options?.all) cb(null, addrs);
    else cb(null, addrs[0]!.address, addrs[0]!.family);
  };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * One request to a foreign URL, following redirects by hand so every hop is authorised and address-checked
 * before anything is sent to it. Only User-Agent, Accept-Encoding and Range are sent: never Authorization,
 * cookies or upstream credentials. Each hop gets its own connection (no pooled socket can skip a check).
 */
export async function safeFetch(raw: string, o: SafeFetchOptions): Promise<SafeResponse> {
  let url = raw;
  for (let hop = 0; ; hop++) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new RefusedError('refused: not a valid URL', url);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RefusedError(`refused: scheme ${u.protocol}`, url);
    if (u.username !== '' || u.password !== '') throw new RefusedError('refused: URL carries userinfo', url);
    u.hash = '';
    const auth = o.authorize(u);
    if ('refused' in auth) throw new RefusedError(`refused: ${auth.refused}`, u.href);
    const addrs = await resolveChecked(u, auth.allowPrivate, o);
    const agent = new Agent({
      connect: { timeout: o.timeouts.connect, lookup: pinnedLookup(addrs) as never },
      headersTimeout: o.timeouts.headers,
      bodyTimeout: o.timeouts.bodyIdle,
      connections: 1,
    });
    const headers: Record<string, string> = { 'user-agent': 'stevedore/0.1', 'accept-encoding': 'identity' };
    if (o.range) headers.range = o.range;
    let res;
    try {
      res = await request(u, { method: o.method, headers, dispatcher: agent });
    } catch (e) {
      void agent.close().catch(() => undefined);
      throw new FetchError((e as Error).message || String(e), u.href);
    }
    // The agent exists for this one response: close it once the body is done (close waits for it).
    void agent.close().catch(() => undefined);
    const location = res.headers.location;
    if (REDIRECTS.has(res.statusCode) && typeof location === 'string') {
      await res.body.dump().catch(() => undefined);
      if (hop >= o.maxRedirects) throw new FetchError(`more than ${o.maxRedirects} redirects`, raw);
      try {
        url = new URL(location, u).href;
      } catch {
        throw new FetchError(`redirect to an invalid Location ${JSON.stringify(location)}`, u.href);
      }
      continue;
    }
    return { status: res.statusCode, headers: res.headers, body: res.body, url: u.href };
  }
}
