// Which address a request comes from: the socket's, or, when the socket is a trusted reverse proxy (nginx in front,
// haproxy), the rightmost X-Forwarded-For entry that is not itself a trusted proxy. Entries further left are the
// client's own claims and are never believed. Used for the failed-attempt limit and the access log.

/** "::ffff:10.0.0.1" (an IPv4 client on a dual-stack socket) -> "10.0.0.1" */
const plain = (a: string): string => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

export function clientAddressOf(socketAddress: string | undefined, forwardedFor: string | undefined, trusted?: (address: string) => boolean): string {
  const direct = socketAddress ? plain(socketAddress) : 'unknown';
  if (!trusted || !forwardedFor || !trusted(direct)) return direct;
  const hops = forwardedFor
    .split(',')
    .map((h) => plain(h.trim()))
    .filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted(hops[i]!)) return hops[i]!;
  // Every hop is a trusted proxy: the leftmost one is the closest to the client we know of.
  return hops[0] ?? direct;
}
