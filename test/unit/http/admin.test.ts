// Unit tests of src/http/admin.ts: the admin API (absent without a token, Bearer auth, mirrors, clear errors).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { buildApp } from '../../../src/app.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { digestOf } from '../../../src/oci/digest.ts';
import type { OciError } from '../../../src/oci/errors.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

describe('store and admin API', () => {
  const tmp = makeTempDir('stevedore-foreign-unit-');
  after(() => tmp.cleanup());
  const d1 = digestOf(Buffer.from('one'));

  test('admin API: absent without a token; Bearer auth; mirrors; clear errors', async () => {
    const off = buildApp(loadConfig({ data: `${tmp.path}/off` }, {}), pino({ level: 'silent' }));
    assert.equal((await off.app.request('/-/admin/foreign')).status, 404);
    await off.close();
    const token = 'unit-admin-token-123456';
    const config = loadConfig({ data: `${tmp.path}/on` }, { STEVEDORE_ADMIN_TOKEN: token });
    const s = buildApp(config, pino({ level: 'silent' }));
    try {
      assert.equal((await s.app.request('/-/admin/foreign')).status, 401);
      assert.equal((await s.app.request('/-/admin/foreign', { headers: { authorization: `Bearer ${token}x` } })).status, 401);
      const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      assert.deepEqual(await (await s.app.request('/-/admin/foreign', { headers: auth })).json(), { layers: [] });
      const target = { upstream: config.upstreams['docker.io']!, repo: 'library/x' };
      s.foreign.onManifest(target, d1, {
        mediaType: 'm',
        descriptors: [
          {
            digest: d1,
            size: 3,
            mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
            urls: ['https://f.example/1'],
            kind: 'blob',
            foreign: true,
          },
        ],
      });
      const add = await s.app.request(`/-/admin/foreign/${d1}/mirrors`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ urls: ['https://m.example/1'] }),
      });
      assert.deepEqual(await add.json(), { added: ['https://m.example/1'] });
      const bad = await s.app.request(`/-/admin/foreign/${d1}/mirrors`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ urls: ['https://u:p@m.example/1'] }),
      });
      assert.equal(bad.status, 400);
      const shown = (await (await s.app.request(`/-/admin/foreign/${d1}`, { headers: auth })).json()) as {
        candidates: { url: string; action: string }[];
        repos: unknown[];
      };
      assert.deepEqual(
        shown.candidates.map((c) => [c.url, c.action]),
        [
          ['https://m.example/1', 'deny'],
          ['https://f.example/1', 'deny'],
        ],
      );
      assert.deepEqual(shown.repos, [{ upstream: 'docker.io', repo: 'library/x' }]);
      assert.equal((await s.app.request(`/-/admin/foreign/${digestOf(Buffer.from('nope'))}`, { headers: auth })).status, 404);
      // Default rules deny everything: the GET answers the clear error without any outbound request.
      const fd = s.foreign.lookup(target, d1)!;
      await assert.rejects(
        s.foreign.resolve(target, d1, fd, async () => assert.fail('no fill under deny')),
        (e: OciError) => {
          const detail = e.detail as { policy: string; tried: { url: string }[]; reason: string };
          return e.code === 'BLOB_UNKNOWN' && detail.policy === 'deny' && detail.reason === 'foreign layer' && detail.tried.length === 2;
        },
      );
      assert.equal(s.foreign.lookup({ ...target, repo: 'library/other' }, d1), undefined);
      assert.equal(s.foreign.stats().denied, 1);
    } finally {
      await s.close();
    }
  });
});
