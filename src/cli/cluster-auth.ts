// Under --workers N, failed authentication is counted once for the whole server: the cluster primary keeps the
// ledger, and each worker reserves every credential check with it over the cluster's IPC channel.
import type { Worker } from 'node:cluster';
import { LRUCache } from 'lru-cache';
import type { AttemptLedger, LocalAttempts } from '../http/attempts.js';

const MSG = 'stevedore:auth';
/** A worker that hears nothing back this long refuses the check (the primary is gone or stuck): fail closed. */
const ANSWER_MS = 5_000;

interface AuthMessage {
  type: typeof MSG;
  op: 'begin' | 'end' | 'state';
  address: string;
  id?: number;
  failed?: boolean;
  /** The primary's answer: seconds the address is refused for (0: go ahead). */
  refusedFor?: number;
}

/** In the primary: answers one worker's reservations from the shared ledger, and tells it where an address stands after each check. */
export function answerAttempts(ledger: LocalAttempts, w: Worker): void {
  w.on('message', (m: AuthMessage) => {
    if (m?.type !== MSG || typeof m.address !== 'string') return;
    const reply = (r: Omit<AuthMessage, 'type' | 'address'>): void => void (w.isConnected() && w.send({ type: MSG, address: m.address, ...r }));
    if (m.op === 'begin') reply({ op: 'begin', id: m.id, refusedFor: ledger.reserve(m.address) });
    else if (m.op === 'end') {
      ledger.end(m.address, m.failed === true);
      reply({ op: 'state', refusedFor: ledger.refusedFor(m.address) });
    }
  });
}

/** In a worker: the primary's ledger; what it last said about each address answers refusedFor() without a round trip. */
export class ClusterAttempts implements AttemptLedger {
  private next = 0;
  private readonly waiting = new Map<number, (refusedFor: number) => void>();
  /** address -> time (ms) until which the primary refuses it */
  private readonly refused = new LRUCache<string, number>({ max: 50_000 });

  constructor() {
    process.on('message', (m: AuthMessage) => {
      if (m?.type !== MSG) return;
      this.note(m.address, m.refusedFor ?? 0);
      if (m.id !== undefined) this.waiting.get(m.id)?.(m.refusedFor ?? 0);
    });
  }

  refusedFor(address: string): number {
    const until = this.refused.get(address);
    return until !== undefined && until > Date.now() ? Math.ceil((until - Date.now()) / 1000) : 0;
  }

  begin(address: string): Promise<number> {
    const id = this.next++;
    return new Promise((resolve) => {
      const done = (refusedFor: number): void => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(refusedFor);
      };
      const timer = setTimeout(() => done(1), ANSWER_MS);
      this.waiting.set(id, done);
      process.send?.({ type: MSG, op: 'begin', id, address } satisfies AuthMessage);
    });
  }

  end(address: string, failed: boolean): void {
    process.send?.({ type: MSG, op: 'end', address, failed } satisfies AuthMessage);
  }

  private note(address: string, refusedFor: number): void {
    if (refusedFor > 0) this.refused.set(address, Date.now() + refusedFor * 1000);
    else this.refused.delete(address);
  }
}
