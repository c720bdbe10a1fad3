// CIDR parsing and address lists (node:net BlockList): rules that open private ranges, trusted reverse proxies.
import { BlockList, isIP } from 'node:net';

/** "10.0.0.0/8", "::1/128" or a bare address; parsed once here so a typo fails at startup, not at fetch time. */
export function parseCidr(value: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = value.trim().split('/');
  if (extra !== undefined) return undefined;
  const v = isIP(address);
  if (v === 0) return undefined;
  const max = v === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

/** A BlockList holding the given CIDRs (used as an allow list for addresses that are private by default). */
export function cidrList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p) list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

/** A test for one address against `list` (false for anything that is not an IP address). */
export function addressIn(list: BlockList): (address: string) => boolean {
  return (address) => {
    const v = isIP(address);
    return v !== 0 && list.check(address, v === 4 ? 'ipv4' : 'ipv6');
  };
}
