// Store writes on the request path are best-effort: a read-only or full data dir must not fail a request
// whose bytes are verified; it only means the answer is not cached. Other errors (bugs) still throw.
import type { Logger } from 'pino';
import { isStoreWriteError } from '../store/errors.js';

export function bestEffort(log: Logger, what: string, write: () => void): boolean {
  try {
    write();
    return true;
  } catch (e) {
    if (!isStoreWriteError(e)) throw e;
    log.warn({ err: (e as Error).message, what }, 'store write failed; serving without caching');
    return false;
  }
}
