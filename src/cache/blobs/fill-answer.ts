// What an upstream answer to a blob GET (fresh, or a Range resume from `offset`) says about the blob: the whole size
// it announces, and whether it starts where the request asked. A fill starts only from an answer that passes.
import { header, type UpstreamResponse } from '../../upstream/client.js';

export type FillAnswer =
  | { ok: true; size: number | undefined }
  /** range: the answer does not start at `offset` (or is a partial 206); size: it announces another size */
  | { ok: false; why: 'range' | 'size'; message: string };

export function checkFillAnswer(res: Pick<UpstreamResponse, 'status' | 'headers'>, offset: number, expectedSize: number | undefined): FillAnswer {
  // A resumed download announces the whole size in Content-Range; a fresh one in Content-Length.
  const cr = header(res.headers, 'content-range');
  const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(cr ?? '');
  const cl = header(res.headers, 'content-length');
  const announced = offset > 0 || res.status === 206 ? (range ? Number(range[2]) : undefined) : cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : undefined;
  const badResume = offset > 0 && (res.status !== 206 || !range || Number(range[1]) !== offset);
  // A 206 to a request without Range is only usable when it is the whole blob.
  const badWhole = offset === 0 && res.status === 206 && (!range || Number(range[1]) !== 0 || (cl !== undefined && Number(cl) !== Number(range[2])));
  if (badResume || badWhole)
    return { ok: false, why: 'range', message: `upstream answered a request from byte ${offset} with ${res.status} and Content-Range ${cr ?? 'none'}` };
  if (announced !== undefined && expectedSize !== undefined && announced !== expectedSize)
    return { ok: false, why: 'size', message: `upstream size ${announced} != descriptor size ${expectedSize}` };
  return { ok: true, size: announced ?? expectedSize };
}
