// A path-prefix mirror (podman, CRI-O, skopeo) for an upstream whose name has a port: containers/image refuses
// "stevedore:5000/registry.corp:5000" as a reference; the upstream configured under a name without the port works.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushMultiLayer, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, type TempDir } from '../helpers/tmp.ts';

describe('path-prefix mirror for an upstream with a port', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let img: PushedImage;

  before(async () => {
    tmp = makeTempDir('stevedore-alias-');
    reg = await startRegistry();
    img = await pushMultiLayer(reg.url, 'team/app', '1', 2);
    // The same registry under both names: the one with the port (which clients cannot address) and the alias.
    sd = await startStevedore({ upstreams: [`registry.corp:5000=${reg.url}`, `registry.corp=${reg.url}`] });
  });
  after(async () => {
    await sd?.stop();
    await reg?.destroy();
    await tmp?.cleanup();
  });

  /** skopeo with a registries.conf whose mirror for registry.corp:5000 (a name that does not resolve) is `mirror`. */
  const pull = (mirror: string, name: string) => {
    const conf = path.join(tmp.path, `${name}.conf`);
    writeFileSync(
      conf,
      [
        '[[registry]]',
        'prefix = "registry.corp:5000"',
        'location = "registry.corp:5000"',
        '[[registry.mirror]]',
        `location = "${mirror}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    // --registries-conf: a hidden global flag of skopeo (1.9 ignores CONTAINERS_REGISTRIES_CONF).
    return runCommand(
      'skopeo',
      [
        '--registries-conf',
        conf,
        '--insecure-policy',
        'copy',
        '--retry-times',
        '0',
        'docker://registry.corp:5000/team/app:1',
        `oci:${path.join(tmp.path, name)}:latest`,
      ],
      { timeoutMs: 60_000 },
    );
  };

  test('mirror location stevedore/registry.corp:5000 is rejected by the client before any request', async () => {
    const r = await pull(`${sd.host}/registry.corp:5000`, 'with-port');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /rewriting reference: invalid reference format/);
    assert.ok(!sd.logs().includes('"repo":"team/app"'), 'stevedore saw no request for it');
  });

  test('mirror location stevedore/registry.corp (upstream configured under the name without the port) pulls through stevedore', async () => {
    const r = await pull(`${sd.host}/registry.corp`, 'alias');
    assert.equal(r.code, 0, r.stderr);
    const seen = sd
      .logs()
      .split('\n')
      .filter((l) => l.includes('"repo":"team/app"'))
      .map((l) => JSON.parse(l) as { upstream: string; digest?: string; reference?: string });
    assert.ok(seen.length > 0 && seen.every((l) => l.upstream === 'registry.corp'), 'every request went to the alias upstream');
    const blobs = new Set(seen.map((l) => l.digest).filter(Boolean));
    for (const d of [img.configDigest, ...img.layers.map((l) => l.digest)]) assert.ok(blobs.has(d), `${d} served by stevedore`);
  });
});
