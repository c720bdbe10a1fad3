// The most recent bytes of a fill, kept in memory: what is not on disk yet, plus a short tail that is. Readers
// that keep up with the download are served from here without reading the temp file back.
interface Chunk { start: number; buf: Buffer }

export class ChunkWindow {
  private chunks: Chunk[] = [];
  private bytes = 0;

  /** @param retain bytes already on disk that are still kept for readers that are a little behind */
  constructor(private readonly retain: number) {}

  get size(): number {
    return this.bytes;
  }

  add(start: number, buf: Buffer): void {
    this.chunks.push({ start, buf });
    this.bytes += buf.length;
  }

  /** Drops chunks that are on disk (below `flushed`) and older than the retained tail. */
  trim(flushed: number, received: number): void {
    let drop = 0;
    for (const c of this.chunks) {
      const end = c.start + c.buf.length;
      if (end > flushed || received - end < this.retain) break;
      drop++;
      this.bytes -= c.buf.length;
    }
    if (drop > 0) this.chunks.splice(0, drop);
  }

  /** Bytes from `pos` up to `until` (exclusive) that the window holds, without copying; undefined if none. */
  slice(pos: number, until: number): Buffer | undefined {
    // Readers are usually near the end: search backwards.
    for (let i = this.chunks.length - 1; i >= 0; i--) {
      const c = this.chunks[i]!;
      if (pos >= c.start + c.buf.length) return undefined;
      if (pos >= c.start) return c.buf.subarray(pos - c.start, Math.min(c.buf.length, until - c.start));
    }
    return undefined;
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}
