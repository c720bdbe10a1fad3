// Hands memory back after a burst of connections: the buffers of clients that left are garbage that V8 collects only
// at its next allocation-driven GC, which an idle server never reaches; a full GC once the connections have fallen
// away, while array-buffer memory is high, frees them (and the allocator returns the pages to the OS).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface ReclaimOptions {
  /** Open connections now. */
  connections(): number;
  /** How often to look (default 1 s). */
  everyMs?: number;
  /** Array-buffer growth since the last forced GC below this is left to V8 (default 32 MiB). */
  floorBytes?: number;
  /** At most one forced GC per this many ms (default 5 s). */
  minGapMs?: number;
  /** Told after each forced GC, with the array-buffer bytes before and after. */
  onReclaim?(before: number, after: number): void;
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
 * (socket and file buffers) hold more than the floor above what was live after that GC, runs a full GC. A steady
 * load never triggers it (V8's own GC keeps up while allocation goes on); a burst that ends triggers it once.
 */
export function reclaimAfterBursts(o: ReclaimOptions): { stop(): void } {
  const floor = o.floorBytes ?? 32 << 20;
  const gap = o.minGapMs ?? 5_000;
  let peak = 0;
  let last = 0;
  /** Array-buffer bytes live after the last forced GC (the small-blob cache, pools): not garbage. */
  let live = 0;
  const timer = setInterval(() => {
    const n = o.connections();
    peak = Math.max(peak, n);
    if (n > peak / 2 || Date.now() - last < gap) return;
    const before = process.memoryUsage().arrayBuffers;
    if (before - live < floor) {
      peak = n;
      return;
    }
    fullGc();
    last = Date.now();
    peak = n;
    live = process.memoryUsage().arrayBuffers;
    o.onReclaim?.(before, live);
  }, o.everyMs ?? 1_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
