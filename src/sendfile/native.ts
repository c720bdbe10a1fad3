// Zero-copy warm hits: loads the sendfile(2) addon (sendfile.c, built by `npm ci`) and sends a file range to a socket.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { read } from 'node:fs';

interface Addon {
  start(socketFd: number, fileFd: number, offset: number, length: number, done: (code: number, sent: number) => void): object;
  progress(handle: object): number;
  cancel(handle: object): void;
}

function load(): { addon?: Addon; reason?: string } {
  if (process.platform !== 'linux') return { reason: `sendfile(2) is used on Linux only (this is ${process.platform})` };
  try {
    // The same path from src/sendfile (tsx) and dist/sendfile (compiled): the binary stays beside its source.
    return { addon: createRequire(import.meta.url)('../../src/sendfile/build/Release/sendfile.node') as Addon };
  } catch (e) {
    return { reason: `the sendfile addon is not built (npm ci builds it with node-gyp): ${(e as Error).message.split('\n')[0]}` };
  }
}

const loaded = load();
let unavailable = loaded.reason;

/** Why hits are copied through Node instead (undefined: sendfile is available). */
export function sendfileUnavailable(): string | undefined {
  return unavailable;
}

/** errnos that say this file system or socket cannot do sendfile at all (not this one transfer's trouble). */
/** Bytes per read when the addon cannot take a transfer. */
const COPY_CHUNK = 256 << 10;

const UNSUPPORTED = new Set([constants.errno.EINVAL, constants.errno.ENOSYS, constants.errno.EOPNOTSUPP]);

/** The descriptor of a plain TCP socket (sendfile cannot write through TLS), or undefined. */
export function plainSocketFd(sock: Socket | null | undefined): number | undefined {
  if (!sock || (sock as Socket & { encrypted?: boolean }).encrypted) return undefined;
  const fd = (sock as Socket & { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

export interface ZeroCopySend {
  /** Resolves when every byte has been handed to the kernel; rejects when the client went away or the file fell short. */
  done: Promise<void>;
  /** Stops the transfer (done rejects with `reason`). */
  cancel(reason: Error): void;
}

/**
 * Bytes [start, end] of `fileFd` to `sock`, written by the kernel from the page cache: no buffer in this process.
 * The caller has flushed everything written before on this socket, writes nothing and keeps `fileFd` open until
 * done settles. When the addon cannot take the transfer (no descriptor left to duplicate the socket with) the
 * range is copied through Node instead, so the response still completes. Progress
 * re-arms the socket's idle timer (the server's stall timeout sees no writes of its own): it is looked at four
 * times per timeout (at most every second), and reported to `onBytes` then.
 */
export function zeroCopy(sock: Socket, fileFd: number, start: number, end: number, onBytes: (n: number) => void): ZeroCopySend | undefined {
  const { addon } = loaded;
  const sockFd = plainSocketFd(sock);
  if (!addon || sockFd === undefined) return undefined;
  let reported = 0;
  const report = (sent: number): void => {
    if (sent <= reported) return;
    onBytes(sent - reported);
    reported = sent;
    if (sock.timeout) sock.setTimeout(sock.timeout);
  };
  let cancelled: Error | undefined;
  let handle: object | undefined;
  let tick: NodeJS.Timeout | undefined;
  let settle: ((code: number, sent: number) => void) | undefined;
  try {
    handle = addon.start(sockFd, fileFd, start, end + 1 - start, (code, sent) => settle!(code, sent));
  } catch {
    return copyFallback(sock, fileFd, start, end, report);
  }
  const done = new Promise<void>((resolve, reject) => {
    settle = (code, sent) => {
      clearInterval(tick);
      report(sent);
      if (code === 1) resolve();
      else if (cancelled) reject(cancelled);
      else if (-code === constants.errno.ENODATA) reject(new Error('blob file is shorter than its recorded size'));
      else {
        if (UNSUPPORTED.has(-code) && sent === 0 && unavailable === undefined) {
          // This response is cut (its headers are out); every later one is copied through Node.
          unavailable = `sendfile(2) failed with ${errnoName(-code)} here; hits are copied through Node`;
          process.emitWarning(unavailable, 'StevedoreSendfile');
        }
        reject(new Error(`sendfile: ${errnoName(-code)}`));
      }
    };
  });
  tick = setInterval(() => report(addon.progress(handle!)), Math.max(50, Math.min(1_000, (sock.timeout ?? 0) / 4 || 1_000)));
  tick.unref();
  return {
    done,
    cancel(reason) {
      cancelled ??= reason;
      addon.cancel(handle!);
    },
  };
}

/** The same range copied through a buffer (fs.read, then a socket write with backpressure); report(total sent). */
function copyFallback(sock: Socket, fd: number, start: number, end: number, report: (sent: number) => void): ZeroCopySend {
  let cancelled: Error | undefined;
  const done = (async () => {
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, end + 1 - start));
    for (let pos = start; pos <= end; ) {
      if (cancelled) throw cancelled;
      const { bytesRead } = await new Promise<{ bytesRead: number }>((resolve, reject) =>
        read(fd, buf, 0, Math.min(buf.length, end + 1 - pos), pos, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))),
      );
      if (bytesRead === 0) throw new Error('blob file is shorter than its recorded size');
      if (cancelled) throw cancelled;
      await new Promise<void>((resolve, reject) => sock.write(buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
      pos += bytesRead;
      report(pos - start);
    }
  })();
  return {
    done,
    cancel(reason) {
      cancelled ??= reason;
    },
  };
}

function errnoName(n: number): string {
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}
