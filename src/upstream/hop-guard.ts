// The guard for every outbound hop to a URL an upstream chose (a redirect): scheme, userinfo, and every address checked.
import type { LookupAddress } from 'node:dns';
import type { BlockList } from 'node:net';
import { Agent } from 'undici';
import { cidrList } from './cidr.js';
import { pinnedLookup, RefusedError, resolveChecked } from './safe-fetch.js';
import type { Upstream } from './types.js';

export interface HopOptions {
  timeouts: { connect: number; headers: number; bodyIdle: number };
  /** DNS resolver (tests); default: the system resolver, every address. */
  resolve?: (hostname: string) => Promise<LookupAddress[]>;
}

const allowLists = new WeakMap<Upstream, BlockList>();

/** The private ranges this upstream's redirects may reach (config `allowPrivate`), parsed once per upstream. */
export function allowPrivateOf(upstream: Upstream): BlockList {
  let list = allowLists.get(upstream);
  if (!list) allowLists.set(upstream, (list = cidrList(upstream.allowPrivate ?? [])));
  return list;
}

/**
 * Checks one hop to `url` that the upstream's own origin did not serve (a redirect elsewhere), the same way a
 * foreign-layer URL is checked (safe-fetch's address guard): http(s) only, no userinfo, the host resolved once
 * and every address refused when loopback, private, link-local, metadata, multicast or reserved, unless the
 * upstream's `allowPrivate` lists it. Returns a one-connection dispatcher pinned to the checked addresses (close
 * it after the response); throws RefusedError before anything is sent. The caller sends no credentials to it.
 */
export async function guardHop(url: URL, upstream: Upstream, o: HopOptions): Promise<Agent> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new RefusedError(`refused: redirect to scheme ${url.protocol}`, url.href);
  if (url.username !== '' || url.password !== '') throw new RefusedError('refused: redirect URL carries userinfo', url.href);
  const addrs = await resolveChecked(url, allowPrivateOf(upstream), o);
  return new Agent({
    connect: { timeout: o.timeouts.connect, lookup: pinnedLookup(addrs) as never },
    headersTimeout: o.timeouts.headers,
    bodyTimeout: o.timeouts.bodyIdle,
    connections: 1,
  });
}
