// Unit tests of src/config/load.ts: the --upstream flag, loadConfig's errors naming the offending key, and credentials from the environment.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, parseUpstreamFlag } from '../../../src/config/load.ts';

function yamlFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'stevedore-unit-')), 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  test('parseUpstreamFlag: URL -> default named host[:port]; NAME=URL -> named', () => {
    assert.deepEqual(parseUpstreamFlag('http://127.0.0.1:5000'), { name: '127.0.0.1:5000', url: 'http://127.0.0.1:5000', isDefault: true });
    assert.deepEqual(parseUpstreamFlag('ghcr.io=https://mirror.example/ghcr'), { name: 'ghcr.io', url: 'https://mirror.example/ghcr', isDefault: false });
    assert.deepEqual(parseUpstreamFlag('https://m.example/a=b'), { name: 'm.example', url: 'https://m.example/a=b', isDefault: true });
    assert.throws(() => parseUpstreamFlag('nonsense'), ConfigError);
  });

  test('loadConfig errors name the offending key', () => {
    const cases: [string, () => unknown][] = [
      ['tagTtl', () => loadConfig({ config: yamlFile('tagTtl: abc') }, {})],
      ['tagTtl', () => loadConfig({}, { STEVEDORE_TAG_TTL: 'soon' })],
      ['timeouts.headers', () => loadConfig({ config: yamlFile('timeouts:\n  headers: -1') }, {})],
      ['retries', () => loadConfig({ config: yamlFile('retries: 11') }, {})],
      ['upstreams.foo.io.url', () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: ftp://x') }, {})],
      ['pasword', () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: https://x\n    pasword: y') }, {})],
      ['"foo"', () => loadConfig({ config: yamlFile('foo: 1') }, {})],
      ['defaultUpstream', () => loadConfig({ config: yamlFile('defaultUpstream: nope.io') }, {})],
      ['listen', () => loadConfig({ listen: 'nope' }, {})],
      ['logLevel', () => loadConfig({}, { STEVEDORE_LOG_LEVEL: 'loud' })],
      [
        'upstreams.foo.io.passwordFile',
        () => loadConfig({ config: yamlFile('upstreams:\n  foo.io:\n    url: https://x\n    passwordFile: /nonexistent/pw') }, {}),
      ],
    ];
    for (const [key, fn] of cases) {
      assert.throws(fn, (e) => e instanceof ConfigError && e.message.includes(key), key);
    }
  });

  test('credentials come from STEVEDORE_UPSTREAM_<NAME>_* env over the file', () => {
    const c = loadConfig(
      { upstream: ['http://127.0.0.1:5000'], config: yamlFile('upstreams:\n  127.0.0.1:5000:\n    url: http://x\n    username: file\n    password: filepw') },
      {
        STEVEDORE_UPSTREAM_127_0_0_1_5000_USERNAME: 'env',
        STEVEDORE_UPSTREAM_DOCKER_IO_TOKEN: 'tok',
      },
    );
    assert.deepEqual(c.upstreams['127.0.0.1:5000']?.credentials, { username: 'env', password: 'filepw', token: undefined });
    assert.equal(c.upstreams['127.0.0.1:5000']?.url, 'http://127.0.0.1:5000');
    assert.equal(c.upstreams['docker.io']?.credentials?.token, 'tok');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.upstreams));
  });
});
