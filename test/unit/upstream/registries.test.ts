// Unit tests of src/upstream/registries.ts: Registries.resolve picks the upstream and repository of a name, or refuses it.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { OciError } from '../../../src/oci/errors.ts';
import { Registries } from '../../../src/upstream/registries.ts';

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof OciError && e.code === code;

describe('Registries.resolve', () => {
  const cfg = loadConfig({ upstream: ['localhost:5000=http://127.0.0.1:5000'] }, {});
  const reg = new Registries(cfg.upstreams, cfg.defaultUpstream);
  const r = (name: string, ns?: string): [string, string] => {
    const t = reg.resolve(name, ns);
    return [t.upstream.name, t.repo];
  };

  test('default upstream docker.io with the library/ rule', () => {
    assert.deepEqual(r('alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('user/app'), ['docker.io', 'user/app']);
    assert.deepEqual(r('library/alpine'), ['docker.io', 'library/alpine']);
  });

  test('?ns= picks the upstream (aliases, case-insensitive); library/ only for docker.io', () => {
    assert.deepEqual(r('alpine', 'docker.io'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('alpine', 'index.docker.io'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('alpine', 'GHCR.IO'), ['ghcr.io', 'alpine']);
    assert.deepEqual(r('owner/img', 'ghcr.io'), ['ghcr.io', 'owner/img']);
    assert.deepEqual(r('x', ''), ['docker.io', 'library/x']);
  });

  test('a host-like first component picks the upstream and is stripped', () => {
    assert.deepEqual(r('ghcr.io/owner/img'), ['ghcr.io', 'owner/img']);
    assert.deepEqual(r('docker.io/alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('registry-1.docker.io/library/alpine'), ['docker.io', 'library/alpine']);
    assert.deepEqual(r('localhost:5000/team/app'), ['localhost:5000', 'team/app']);
  });

  test('unconfigured hosts are DENIED (403), bad names NAME_INVALID', () => {
    for (const [name, ns] of [['x/y', 'evil.example'], ['evil.example/x'], ['localhost/x'], ['127.0.0.1:9/x'], ['x', 'localhost:5001']] as const) {
      assert.throws(
        () => reg.resolve(name, ns),
        (e) => isCode('DENIED')(e) && (e as OciError).status === 403,
        `${name} ns=${ns}`,
      );
    }
    const noBuiltins = loadConfig({ upstream: ['http://127.0.0.1:5000'], config: yamlFile('builtinUpstreams: false') }, {});
    const only = new Registries(noBuiltins.upstreams, noBuiltins.defaultUpstream);
    assert.throws(() => only.resolve('ghcr.io/a/b', undefined), isCode('DENIED'));
    assert.deepEqual(only.resolve('alpine', undefined).repo, 'alpine');
    for (const bad of ['UPPER/case', 'a//b', '-a/b', 'ghcr.io/Owner/img', 'a/', '']) {
      assert.throws(() => reg.resolve(bad, undefined), isCode('NAME_INVALID'), bad);
    }
  });
});

function yamlFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'stevedore-unit-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}
