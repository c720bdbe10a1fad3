// Range headers beyond the single-range fast path (RFC 9110 §14): what to do with one, and multipart/byteranges bodies.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

/** At most this many parts in one multipart response; a longer list is answered with the whole blob. */
export const MAX_PARTS = 1024;

export interface ByteRange {
  start: number;
  end: number;
}

/**
 * How to answer a Range header:
 * - `whole`: ignore it (RFC 9110 §14.2: an unknown unit MUST be ignored, an invalid ranges-specifier MAY be;
 *   overlapping or out-of-order lists and lists longer than MAX_PARTS are ignored too, as §14.6 permits),
 * - `single`: one range, for the single-range fast path (respond.ts parseRange; it answers unsatisfiable ones),
 * - `multi`: two or more satisfiable ranges, ascending and disjoint, as a multipart/byteranges 206,
 * - `unsatisfiable`: none of several ranges overlaps the blob (416).
 */
export type RangePlan = { kind: 'whole' } | { kind: 'single'; header: string } | { kind: 'multi'; parts: ByteRange[] } | { kind: 'unsatisfiable' };

const SPEC_RE = /^(\d*)-(\d*)$/;

export function planRange(value: string, size: number | undefined): RangePlan {
  const eq = value.indexOf('=');
  if (eq < 0 || value.slice(0, eq).trim().toLowerCase() !== 'bytes' || size === undefined) return { kind: 'whole' };
  // A #list may carry empty elements (RFC 9110 §5.6.1); anything else that is not a range-spec is invalid.
  const specs = value
    .slice(eq + 1)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (specs.length === 0 || specs.length > MAX_PARTS) return { kind: 'whole' };
  const parsed: { first: string; last: string }[] = [];
  for (const s of specs) {
    const m = SPEC_RE.exec(s);
    if (!m || (m[1] === '' && m[2] === '')) return { kind: 'whole' };
    if (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1])) return { kind: 'whole' };
    parsed.push({ first: m[1]!, last: m[2]! });
  }
  if (parsed.length === 1) return { kind: 'single', header: `bytes=${specs[0]}` };
  const parts: ByteRange[] = [];
  for (const { first, last } of parsed) {
    let r: ByteRange | undefined;
    if (first === '') {
      const n = Number(last);
      if (n > 0 && size > 0) r = { start: Math.max(0, size - n), end: size - 1 };
    } else if (Number(first) < size) {
      r = { start: Number(first), end: last === '' ? size - 1 : Math.min(Number(last), size - 1) };
    }
    if (r) parts.push(r);
  }
  if (parts.length === 0) return { kind: 'unsatisfiable' };
  if (parts.length === 1) return { kind: 'single', header: `bytes=${parts[0]!.start}-${parts[0]!.end}` };
  for (let i = 1; i < parts.length; i++) if (parts[i]!.start <= parts[i - 1]!.end) return { kind: 'whole' };
  return { kind: 'multi', parts };
}

/**
 * A multipart/byteranges body (RFC 9110 §14.6) over ascending disjoint `parts`, read with ONE open() of the
 * span from the first part's start to the last part's end (a blob handle opens once; a fill is followed once),
 * skipping the gaps. Returns the headers (Content-Type with the boundary, exact Content-Length) and the body.
 * `discard` runs instead of open() when the body is destroyed before it was ever read (the client went first).
 */
export function multipartBody(
  open: (start: number, end: number) => Readable,
  parts: ByteRange[],
  size: number,
  partType: string,
  discard?: () => void,
): { headers: Record<string, string>; body: Readable } {
  const boundary = `stevedore-${randomBytes(12).toString('hex')}`;
  const heads = parts.map((p, i) =>
    Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${partType}\r\nContent-Range: bytes ${p.start}-${p.end}/${size}\r\n\r\n`),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  let length = tail.length;
  for (const [i, p] of parts.entries()) length += heads[i]!.length + p.end - p.start + 1;
  let opened = false;
  async function* generate(): AsyncGenerator<Buffer> {
    const first = parts[0]!;
    opened = true;
    const src = open(first.start, parts[parts.length - 1]!.end);
    let pos = first.start; // offset in the blob of the chunk being looked at
    let i = 0;
    try {
      yield heads[0]!;
      for await (const chunk of src as AsyncIterable<Buffer>) {
        let off = 0;
        while (off < chunk.length && i < parts.length) {
          const p = parts[i]!;
          const at = pos + off;
          if (at < p.start) {
            off += Math.min(chunk.length - off, p.start - at);
            continue;
          }
          const n = Math.min(chunk.length - off, p.end - at + 1);
          yield chunk.subarray(off, off + n);
          off += n;
          if (at + n - 1 === p.end) {
            i++;
            yield i < parts.length ? heads[i]! : tail;
          }
        }
        pos += chunk.length;
      }
    } finally {
      src.destroy();
    }
    // The source ended short: fail so the socket is cut (Content-Length makes that visible), never a clean end.
    if (i < parts.length) throw new Error('blob ended before the last range');
  }
  const body = Readable.from(generate(), { objectMode: false });
  body.once('close', () => {
    if (!opened) discard?.();
  });
  return { headers: { 'content-type': `multipart/byteranges; boundary=${boundary}`, 'content-length': String(length) }, body };
}
