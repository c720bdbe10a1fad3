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
  test('upstreams.<name>.endpoints: a chain, credentials per endpoint, never beside endpoints; the url form still works', () => {
    const chain =
      'upstreams:\n  docker.io:\n    endpoints:\n      - url: http://site-cache:5000/\n        mirror: true\n      - url: https://registry-1.docker.io\n        username: u\n        password: p\n';
    const c = loadConfig({ config: yamlFile(chain) }, {});
    const d = c.upstreams['docker.io']!;
    assert.equal(d.url, 'https://registry-1.docker.io');
    assert.equal(d.credentials, undefined, 'the chain itself carries no credentials');
    assert.deepEqual(
      d.endpoints?.map((e) => ({ name: e.name, url: e.url, mirror: e.mirror, credentials: e.credentials })),
      [
        { name: 'docker.io@site-cache:5000', url: 'http://site-cache:5000', mirror: true, credentials: undefined },
        {
          name: 'docker.io@registry-1.docker.io',
          url: 'https://registry-1.docker.io',
          mirror: false,
          credentials: { username: 'u', password: 'p', token: undefined },
        },
      ],
    );
    assert.equal(c.upstreams['ghcr.io']?.endpoints, undefined, 'the url form is one endpoint, as before');
    const bad: [string, string][] = [
      ['upstreams.x.io.url: give either url or endpoints', 'upstreams:\n  x.io:\n    username: u\n'],
      ['upstreams.x.io.endpoints: give either url or endpoints', 'upstreams:\n  x.io:\n    url: https://x\n    endpoints:\n      - url: https://y\n'],
      ['upstreams.x.io.username: credentials belong to one endpoint', 'upstreams:\n  x.io:\n    username: u\n    endpoints:\n      - url: https://y\n'],
      [
        'upstreams.x.io.endpoints.1.url: endpoint https://y is listed twice',
        'upstreams:\n  x.io:\n    endpoints:\n      - url: https://y\n      - url: https://y\n',
      ],
      ['upstreams.x.io.endpoints', 'upstreams:\n  x.io:\n    endpoints: []\n'],
      ['upstreams.x.io.endpoints.0: Unrecognized key: "mirorr"', 'upstreams:\n  x.io:\n    endpoints:\n      - url: https://y\n        mirorr: true\n'],
    ];
    for (const [msg, yaml] of bad)
      assert.throws(
        () => loadConfig({ config: yamlFile(yaml) }, {}),
        (e) => e instanceof ConfigError && e.message.includes(msg),
        msg,
      );
    // Environment credentials need an origin endpoint to go to.
    const mirrorsOnly = 'upstreams:\n  x.io:\n    endpoints:\n      - url: http://site:5000\n        mirror: true\n';
    assert.throws(() => loadConfig({ config: yamlFile(mirrorsOnly) }, { STEVEDORE_UPSTREAM_X_IO_TOKEN: 't' }), /every endpoint is a mirror/);
    // A --upstream flag replaces a chain from the file.
    const flagged = loadConfig({ config: yamlFile(chain), upstream: ['docker.io=https://other.example'] }, {});
    assert.equal(flagged.upstreams['docker.io']?.endpoints, undefined);
    assert.equal(flagged.upstreams['docker.io']?.url, 'https://other.example');
  });
});
