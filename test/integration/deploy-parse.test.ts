// deploy/ as shipped: every file parses, config.sample.yaml loads with the real loader and documents every key, hosts.toml mirrors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import { configSchema, loadConfig } from '../../src/config/load.ts';
import { assertRejects, DEPLOY, FILES, kindOf, mutate, parseProblems, rel, type Obj } from '../helpers/deploy.ts';

describe('every file under deploy/ parses', () => {
  test('the tree holds what the README and the tests below expect', () => {
    for (const f of [
      'config.sample.yaml',
      'containerd/certs.d/docker.io/hosts.toml',
      'containerd/certs.d/_default/hosts.toml',
      'podman/registries.conf',
      'docker/daemon.json',
      'systemd/stevedore.service',
      'kubernetes/site/deployment.yaml',
      'kubernetes/node-local/daemonset.yaml',
      'kubernetes/site-sharded/statefulset.yaml',
      'haproxy/haproxy.cfg',
      'README.md',
    ]) {
      assert.ok(FILES.includes(path.join(DEPLOY, f)), `deploy/${f} exists`);
    }
  });

  for (const file of FILES) {
    test(rel(file), () => {
      const kind = kindOf(file);
      assert.ok(kind, `${rel(file)}: no check knows this kind of file; add one to kindOf in test/helpers/deploy.ts`);
      const text = readFileSync(file, 'utf8');
      assert.deepEqual(parseProblems(kind, text), [], `${rel(file)} parses as ${kind}`);
      // Convention: the first line says the file's one job (JSON cannot hold a comment; Markdown has its title).
      if (kind !== 'json' && kind !== 'markdown') assert.match(text.split('\n')[0]!, /^# \S/, `${rel(file)} starts with a comment`);
    });
  }

  test('a parse error is caught in every format', () => {
    assert.notDeepEqual(parseProblems('yaml', 'a: 1\n---\nb: [1, 2\n'), []);
    assert.notDeepEqual(parseProblems('yaml', 'a: 1\na: 2\n'), []);
    assert.notDeepEqual(parseProblems('json', '{"registry-mirrors": ["x",]}'), []);
    assert.notDeepEqual(parseProblems('toml', '[host."http://x:5000"]\n  capabilities = ["pull", "resolve"\n'), []);
    assert.notDeepEqual(parseProblems('toml', 'server = "a"\nserver = "b"\n'), []);
    assert.notDeepEqual(parseProblems('haproxy', 'defaults\n  mode http\nbackend b\n  balance nonsense\n'), []);
  });
});

// ---------------------------------------------------------------------------------------------------------
// config.sample.yaml

/** Example lines "# key: value" (also "#   - key: value") with the "# " removed; prose comments stay comments. */
const COMMENTED_KEY = /^(\s*)# (\s*(?:- )?[A-Za-z_][A-Za-z0-9_]*:(?:\s.*)?)$/;
function uncomment(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(COMMENTED_KEY, '$1$2'))
    .join('\n');
}

interface SchemaNode {
  _zod: { def: { type: string; innerType?: SchemaNode; in?: SchemaNode; shape?: Record<string, SchemaNode>; valueType?: SchemaNode; element?: SchemaNode } };
}

/** Every key path of a zod schema: "timeouts.connect", "upstreams.*.url", "foreign.rules.[].match". */
function schemaPaths(node: SchemaNode, prefix: string[] = []): string[][] {
  const def = node._zod.def;
  if (def.innerType) return schemaPaths(def.innerType, prefix);
  if (def.type === 'pipe' && def.in) return schemaPaths(def.in, prefix);
  if (def.type === 'record' && def.valueType) return schemaPaths(def.valueType, [...prefix, '*']);
  if (def.type === 'array' && def.element) return schemaPaths(def.element, [...prefix, '[]']);
  if (def.type === 'object' && def.shape) {
    return Object.entries(def.shape).flatMap(([k, v]) => [[...prefix, k], ...schemaPaths(v, [...prefix, k])]);
  }
  return [];
}

function hasPath(value: unknown, segs: string[]): boolean {
  if (segs.length === 0) return true;
  const [seg, ...rest] = segs as [string, ...string[]];
  if (seg === '[]') return Array.isArray(value) && value.some((v) => hasPath(v, rest));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  if (seg === '*') return Object.values(value).some((v) => hasPath(v, rest));
  return seg in value && hasPath((value as Obj)[seg], rest);
}

describe('deploy/config.sample.yaml', () => {
  const file = path.join(DEPLOY, 'config.sample.yaml');
  const text = readFileSync(file, 'utf8');
  const full = uncomment(text);

  test('loads with the real config loader as shipped, with no secrets', () => {
    const c = loadConfig({ config: file }, {});
    assert.equal(c.adminToken, undefined);
    for (const u of Object.values(c.upstreams)) assert.equal(u.credentials, undefined, `${u.name} has no credentials in the sample`);
  });

  test('active keys show the defaults (upstreams aside)', () => {
    const sample = loadConfig({ config: file }, {}) as unknown as Obj;
    const defaults = loadConfig({}, {}) as unknown as Obj;
    for (const key of Object.keys(defaults)) {
      if (key === 'upstreams') continue;
      assert.deepEqual(sample[key], defaults[key], `${key}: the sample's value is the default`);
    }
  });

  test('with every "# key: value" example uncommented it still passes the schema', () => {
    assert.notEqual(full, text);
    const r = configSchema.safeParse(parseYaml(full));
    assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues));
  });

  test('documents every key of configSchema (as an active key or a "# key: value" example)', () => {
    const doc = parseYaml(full) as unknown;
    const paths = schemaPaths(configSchema as unknown as SchemaNode);
    for (const key of ['listen', 'upstreams.*.passwordFile', 'timeouts.bodyIdle', 'circuitBreaker.cooldown', 'maxSize']) {
      assert.ok(
        paths.some((p) => p.join('.') === key),
        `schema walk finds ${key}`,
      );
    }
    const missing = paths.filter((p) => !hasPath(doc, p)).map((p) => p.join('.'));
    assert.deepEqual(missing, [], 'keys of configSchema missing from deploy/config.sample.yaml');
  });

  test('the coverage check can fail: a key dropped from the sample is reported', () => {
    const doc = parseYaml(mutate(full, /^sweepInterval: .*$/m, '')) as unknown;
    assert.equal(hasPath(doc, ['sweepInterval']), false);
    const noFile = parseYaml(mutate(full, /^\s+tokenFile: .*$/m, '')) as unknown;
    assert.equal(hasPath(noFile, ['upstreams', '*', 'tokenFile']), false);
  });

  test('a broken copy is rejected, naming the key', () => {
    assertRejects(mutate(text, /^tagTtl: 30$/m, 'tagTtl: thirty'), 'tagTtl');
    assertRejects(mutate(text, /^retries: 3$/m, 'retrys: 3'), 'retrys');
    assertRejects(mutate(text, /^ {2}bodyIdle: 30000$/m, '  bodyIdle: -1'), 'timeouts.bodyIdle');
    assertRejects(mutate(text, /^logLevel: info$/m, 'logLevel: verbose'), 'logLevel');
    assertRejects(mutate(full, /^adminToken: .*$/m, 'adminToken: short'), 'adminToken');
  });
});

// ---------------------------------------------------------------------------------------------------------
// containerd hosts.toml

function hostsTomlProblems(text: string): string[] {
  const doc = parseToml(text) as Obj;
  const problems: string[] = [];
  if (doc.server !== undefined && !/^https?:\/\/[^/]+$/.test(String(doc.server))) problems.push(`server is not an http(s) origin: ${doc.server}`);
  const hosts = (doc.host ?? {}) as Obj;
  const good = Object.entries(hosts).filter(
    ([url, h]) => /^https?:\/\//.test(url) && Array.isArray(h?.capabilities) && h.capabilities.includes('pull') && h.capabilities.includes('resolve'),
  );
  if (good.length === 0) problems.push('no [host."http(s)://..."] with capabilities ["pull", "resolve"]');
  return problems;
}

describe('deploy/containerd/certs.d/*/hosts.toml', () => {
  const files = FILES.filter((f) => path.basename(f) === 'hosts.toml');
  test('there are some', () => assert.ok(files.length >= 2));
  for (const file of files) {
    test(`${rel(file)}: a mirror host with pull + resolve`, () => {
      assert.deepEqual(hostsTomlProblems(readFileSync(file, 'utf8')), []);
    });
  }
  test('the check can fail', () => {
    const text = readFileSync(path.join(DEPLOY, 'containerd/certs.d/docker.io/hosts.toml'), 'utf8');
    assert.notDeepEqual(hostsTomlProblems(mutate(text, '["pull", "resolve"]', '["pull"]')), []);
    assert.notDeepEqual(hostsTomlProblems(mutate(text, /\[host\.[^\]]+\]/, '[mirror."http://x:5000"]')), []);
    assert.notDeepEqual(hostsTomlProblems('server = "https://registry-1.docker.io"\n'), []);
  });
});
