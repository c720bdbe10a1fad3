// Requests and bodies for in-process integration tests: a bounded GET/HEAD, the one error of an OCI error body, test manifests.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'undici';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  error?: unknown;
}

/** One request; the body is read to the end or until it fails (the failure is returned, not thrown). Bounded. */
export async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Got> {
  const res = await request(url, { method, headers, signal: AbortSignal.timeout(20_000) });
  const chunks: Buffer[] = [];
  let error: unknown;
  await (async () => {
    for await (const c of res.body) chunks.push(c as Buffer);
  })().catch((e: unknown) => void (error = e));
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), error };
}

/** The one error of an OCI error body, asserting the body's shape. */
export function ociCode(r: Got): { code: string; message: string; detail: unknown } {
  const j = JSON.parse(r.body.toString()) as { errors: { code: string; message: string; detail: unknown }[] };
  assert.equal(j.errors.length, 1);
  assert.deepEqual(Object.keys(j.errors[0]!).sort(), ['code', 'detail', 'message']);
  return j.errors[0]!;
}

/** A small image manifest with random config and layer digests. */
export function manifest(mediaType = OCI_MANIFEST): Buffer {
  const desc = (mt: string): object => ({ mediaType: mt, digest: sha256(randomBytes(16)), size: 100 });
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: desc('application/vnd.oci.image.config.v1+json'),
      layers: [desc('application/vnd.oci.image.layer.v1.tar')],
    }),
  );
}

/** One series of stevedore's /metrics (`name` or `name{label="v"}`, as printed); 0 when absent. */
export async function metricValue(baseUrl: string, series: string): Promise<number> {
  const text = (await get(`${baseUrl}/metrics`)).body.toString();
  const m = new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}
