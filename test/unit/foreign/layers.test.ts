// Unit tests of src/foreign/layers.ts: resolution order of a foreign layer's URLs (operator mirrors first, unhealthy last, denied skipped).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { pino } from 'pino';
import { ForeignLayers } from '../../../src/foreign/layers.ts';
import { ForeignPolicy } from '../../../src/foreign/policy.ts';
import { foreignSchema } from '../../../src/config/foreign.ts';
import { digestOf } from '../../../src/oci/digest.ts';
import { BlobStore } from '../../../src/store/blob-store.ts';
import { ForeignStore } from '../../../src/store/foreign.ts';
import { Metadata } from '../../../src/store/metadata.ts';
import { makeTempDir } from '../../helpers/tmp.ts';

const rules = (r: unknown[]) => foreignSchema.parse({ rules: r }).rules;

describe('resolution order', () => {
  const tmp = makeTempDir('stevedore-foreign-order-');
  after(() => tmp.cleanup());

  test('redirect: operator mirrors first, unhealthy URLs last, denied ones skipped; the Location is the parsed URL', async () => {
    const log = pino({ level: 'silent' });
    const store = new BlobStore(tmp.path);
    const meta = new Metadata(store.paths.db);
    const fs = new ForeignStore(meta.db);
    const foreign = new ForeignLayers({
      store: fs,
      log,
      now: () => 1,
      fill: { store, meta, log, maxResumes: 0 },
      policy: new ForeignPolicy(rules([{ match: 'https://*.example/*', action: 'redirect' }])),
      config: { timeouts: { connect: 1_000, headers: 1_000, bodyIdle: 1_000 }, maxRedirects: 0 },
    });
    const target = { upstream: { name: 'up', url: 'https://up.example', libraryPrefix: false }, repo: 'a/b' };
    const d = digestOf(Buffer.from('layer'));
    const urls = ['https://denied.test/x', 'https://one.example/x\n', 'https://two.example/x'];
    foreign.onManifest(target, d, {
      mediaType: 'm',
      descriptors: [{ digest: d, size: 5, mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', urls, kind: 'blob', foreign: true }],
    });
    const fd = foreign.lookup(target, d)!;
    const noFill = async () => assert.fail('redirect never fills');
    assert.equal((await foreign.resolve(target, d, fd, noFill)).redirect, 'https://one.example/x');
    fs.markFailure('https://one.example/x\n', 'down', 1);
    assert.equal((await foreign.resolve(target, d, fd, noFill)).redirect, 'https://two.example/x');
    fs.addMirror(d, 'https://mirror.example/m', 1);
    const h = await foreign.resolve(target, d, fd, noFill);
    assert.deepEqual([h.redirect, h.outcome, h.size], ['https://mirror.example/m', 'redirect', 5]);
    assert.deepEqual(await foreign.stat(target, d, fd), { size: 5, outcome: 'redirect' });
    assert.equal(fs.get(d)!.status, 'redirectable');
    meta.close();
  });
});
