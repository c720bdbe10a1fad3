// Hands memory back after a burst of connections: the buffers and objects of clients that left are garbage that V8
// collects only at its next allocation-driven GC, which an idle server never reaches; a full GC once the connections
// have fallen away, while array-buffer or heap memory is high, frees them (and the pages go back to the OS).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface ReclaimOptions {
  /** Open connections now. */
  connections(): number;
  /** How often to look (default 1 s). */
  everyMs?: number;
  /** Array-buffer or heap growth since the last forced GC below this is left to V8 (default 32 MiB). */
  floorBytes?: number;
  /** At most one forced GC per this many ms (default 5 s). */
  minGapMs?: number;
  /** Told after each forced GC, with the array-buffer bytes before and after, and the heap's. */
  onReclaim?(before: number, after: number, heap: { before: number; after: number }): void;
}

let collect: (() => void) | undefined;
/** V8's full GC: the global `gc` under --expose-gc, otherwise exposed once at runtime. */
function fullGc(): void {
  if (!collect) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) collect = exposed;
    else {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
    }
  }
  collect();
}

/**
 * Watches the connection count: when it has fallen to half of its peak since the last forced GC, and array buffers
 * (socket and file buffers) or the JS heap (requests and responses of clients that pipelined and never read: 600 MB
 * of it after 50 such connections) hold more than the floor above what was live after that GC, runs a full GC. A steady
 * load never triggers it (V8's own GC keeps up while allocation goes on); a burst that ends triggers it once.
 */
export function reclaimAfterBursts(o: ReclaimOptions): { stop(): void } {
  const floor = o.floorBytes ?? 32 << 20;
  const gap = o.minGapMs ?? 5_000;
  let peak = 0;
  let last = 0;
  /** Array-buffer and heap bytes live after the last forced GC (the small-blob cache, pools, caches): not garbage. */
  let live = 0;
  let liveHeap = process.memoryUsage().heapUsed;
  const timer = setInterval(() => {
    const n = o.connections();
    peak = Math.max(peak, n);
    if (n > peak / 2 || Date.now() - last < gap) return;
    const { arrayBuffers: before, heapUsed: heapBefore } = process.memoryUsage();
    if (before - live < floor && heapBefore - liveHeap < floor) {
      peak = n;
      return;
    }
    fullGc();
    last = Date.now();
    peak = n;
    ({ arrayBuffers: live, heapUsed: liveHeap } = process.memoryUsage());
    o.onReclaim?.(before, live, { before: heapBefore, after: liveHeap });
  }, o.everyMs ?? 1_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
