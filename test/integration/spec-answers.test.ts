// The distribution-spec's answers against the real registry (2.8): invalid references, Accept */* or absent, upstream 4xx.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { get, ociCode, sha256 } from '../helpers/http.ts';
import { MT, pushBlob, pushImage, pushManifest, pushOciIndex, type PushedImage, type PushedIndex } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startInProcess, type InProcess } from '../helpers/stevedore.ts';

const run = promisify(execFile);

/** curl as a user runs it (its default Accept: *\/*): status line and body. */
async function curl(url: string, extra: string[] = []): Promise<{ status: number; headers: string; body: Buffer }> {
  const { stdout } = await run('curl', ['-s', '-i', '--max-time', '20', ...extra, url], { encoding: 'buffer', maxBuffer: 16 << 20 });
  const end = stdout.indexOf('\r\n\r\n');
  const head = stdout.subarray(0, end).toString();
  return { status: Number(head.split(' ')[1]), headers: head, body: stdout.subarray(end + 4) };
}

describe('spec answers: invalid references, Accept, upstream 4xx (real registry)', () => {
  let reg: Registry;
  let sd: InProcess;
  let oci: PushedImage;
  let docker: PushedImage;
  let idx: PushedIndex;
  /** A Docker v2 manifest whose config registry 2.8 cannot convert to schema1: it answers 400 to a schema1-only Accept. */
  let odd: Buffer;

  before(async () => {
    reg = await startRegistry();
    oci = await pushImage(reg.url, 'spec/oci', 'v1', { layers: [{ seed: 11, sizeBytes: 2000 }], mediaTypes: 'oci' });
    docker = await pushImage(reg.url, 'spec/docker', 'v1', { layers: [{ seed: 12, sizeBytes: 2000 }], mediaTypes: 'docker' });
    idx = await pushOciIndex(reg.url, 'spec/index', 'v1', { layerSize: 1000 });
    const cfg = Buffer.from('{}');
    await pushBlob(reg.url, 'spec/odd', sha256(cfg), cfg);
    odd = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MT.dockerManifest, config: { mediaType: MT.dockerConfig, digest: sha256(cfg), size: 2 }, layers: [] }),
    );
    await pushManifest(reg.url, 'spec/odd', 'v1', odd, MT.dockerManifest);
    await pushManifest(reg.url, 'spec/odd', 'v2', odd, MT.dockerManifest);
    sd = await startInProcess({ upstream: [reg.url], tagTtl: '300', configObject: { retries: 0 } });
  });
  after(async () => {
    await sd?.stop();
    await reg?.destroy();
  });

  test('a reference that is neither a tag nor a digest: 404 MANIFEST_UNKNOWN (GET and HEAD), upstream never asked', async () => {
    reg.clearRequests();
    for (const ref of ['.INVALID_MANIFEST_NAME', '-leading-dash', 'x'.repeat(129), 'a%20b']) {
      const r = await get(`${sd.url}/v2/spec/oci/manifests/${ref}`);
      assert.equal(r.status, 404, `${ref}: ${r.body.toString()}`);
      assert.equal(ociCode(r).code, 'MANIFEST_UNKNOWN');
      const h = await get(`${sd.url}/v2/spec/oci/manifests/${ref}`, {}, 'HEAD');
      assert.equal(h.status, 404, ref);
      assert.equal(h.body.length, 0);
    }
    // A malformed digest stays a bad request (the spec: invalid digest syntax is a 400).
    assert.equal(ociCode(await get(`${sd.url}/v2/spec/oci/manifests/sha256:zz`)).code, 'DIGEST_INVALID');
    assert.deepEqual(
      reg.requests().filter((q) => q.uri.startsWith('/v2/spec/')),
      [],
      'refused references never reach the upstream',
    );
  });

  test('curl with its default Accept: */* gets the manifest as stored upstream (OCI, Docker v2, index), not a schema1 conversion', async () => {
    for (const [repo, bytes, type] of [
      ['spec/oci', oci.manifestBytes, MT.ociManifest],
      ['spec/docker', docker.manifestBytes, MT.dockerManifest],
      ['spec/index', idx.manifestBytes, MT.ociIndex],
      ['spec/odd', odd, MT.dockerManifest],
    ] as const) {
      const r = await curl(`${sd.url}/v2/${repo}/manifests/v1`);
      assert.equal(r.status, 200, `${repo}: ${r.body.toString()}`);
      assert.ok(r.body.equals(bytes), `${repo}: the bytes upstream stores`);
      assert.match(r.headers, new RegExp(`content-type: ${type.replace(/[.+]/g, '\\$&')}`, 'i'));
      assert.match(r.headers, new RegExp(`docker-content-digest: ${sha256(bytes)}`, 'i'));
    }
    // No Accept at all: the same.
    const none = await curl(`${sd.url}/v2/spec/index/manifests/v1`, ['-H', 'Accept:']);
    assert.equal(none.status, 200);
    assert.ok(none.body.equals(idx.manifestBytes));
  });

  test('an upstream 400 on a manifest is 502 with the upstream status and its error in detail, not MANIFEST_UNKNOWN', async () => {
    // Asked for schema1 only, registry 2.8 tries to convert this manifest and answers 400 MANIFEST_INVALID.
    const r = await get(`${sd.url}/v2/spec/odd/manifests/v2`, { accept: 'application/vnd.docker.distribution.manifest.v1+prettyjws' });
    assert.equal(r.status, 502, r.body.toString());
    const e = ociCode(r);
    const detail = e.detail as { upstreamStatus: number; upstreamErrors: { code: string }[] };
    assert.equal(detail.upstreamStatus, 400);
    assert.equal(detail.upstreamErrors[0]?.code, 'MANIFEST_INVALID');
    assert.ok(
      reg.requests().some((q) => q.uri === '/v2/spec/odd/manifests/v2' && q.status === 400),
      'the upstream was asked and answered 400',
    );
  });
});
