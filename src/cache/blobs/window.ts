// The most recent bytes of a fill, kept in memory: what is not on disk yet, plus a short tail that is. Readers
// that keep up with the download are served from here without reading the temp file back.
interface Chunk {
  start: number;
  buf: Buffer;
}

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

  /**
   * Bytes from `pos` up to `until` (exclusive, at most `max`) that the window holds; undefined if none. One chunk
   * is returned without copying; several consecutive ones are joined, so a reader that fell a little behind
   * sends one large socket write instead of many 64 KiB ones.
   */
  slice(pos: number, until: number, max = 1 << 20): Buffer | undefined {
    // Readers are usually near the end: search backwards.
    let i = this.chunks.length - 1;
    for (; i >= 0; i--) {
      const c = this.chunks[i]!;
      if (pos >= c.start + c.buf.length) return undefined;
      if (pos >= c.start) break;
    }
    if (i < 0) return undefined;
    const stop = Math.min(until, pos + max);
    const parts: Buffer[] = [];
    for (let at = pos; i < this.chunks.length && at < stop; i++) {
      const c = this.chunks[i]!;
      const part = c.buf.subarray(at - c.start, Math.min(c.buf.length, stop - c.start));
      parts.push(part);
      at += part.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}
