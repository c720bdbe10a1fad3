// A TCP relay on 127.0.0.1 that paces the target's answers at a given byte rate (a slow link, for tests and the bench).
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP relay to the registry that paces the registry's answers at `bytesPerSec` (token bucket), like a
 * link of that bandwidth: a fill of a big blob is reliably still running when a test acts, and the bench can
 * compare a cold pull through stevedore with a direct one over the same link.
 */
export async function pacedRelay(targetPort: number, bytesPerSec: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const up = connect(targetPort, '127.0.0.1');
    for (const s of [client, up]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    const kill = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('error', kill).on('close', kill);
    up.on('error', kill).on('close', kill);
    client.pipe(up);
    let due = Date.now();
    up.on('data', (chunk: Buffer) => {
      client.write(chunk);
      due = Math.max(due, Date.now()) + (chunk.length / bytesPerSec) * 1000;
      const wait = due - Date.now();
      if (wait > 5) {
        up.pause();
        setTimeout(() => up.resume(), wait);
      }
    });
    up.on('end', () => client.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
