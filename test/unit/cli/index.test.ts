// Unit tests of src/cli/index.ts (and the flag sets of src/cli/run.ts): --version, per-command --help, check-config's YAML read back, unknown STEVEDORE_* refused; dist/main.js as a child process.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { makeTempDir, runCommand } from '../../helpers/tmp.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const MAIN = path.join(ROOT, 'dist/main.js');
/** The environment without any STEVEDORE_* variable of the caller's. */
const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STEVEDORE_'))),
  ...extra,
});
const cli = (args: string[], env: Record<string, string> = {}) => runCommand(process.execPath, [MAIN, ...args], { timeoutMs: 30_000, env: cleanEnv(env) });
const flagsOf = (help: string): string[] => [...help.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!).sort();

describe('stevedore CLI surface', () => {
  test('--version prints the version from package.json', async () => {
    const r = await cli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });

  test('each command lists in --help only the flags it uses', async () => {
    const data = ['--config', '--data', '--help', '--log-format', '--log-level'];
    const cases: [string[], string[]][] = [
      [['du'], [...data, '--json']],
      [['pins'], [...data, '--json']],
      [['verify'], [...data, '--repair']],
      [['gc'], [...data, '--dry-run', '--max-size', '--min-free-disk']],
      [['pin'], [...data, '--upstream']],
      [
        ['foreign', 'list'],
        [...data, '--json', '--status'],
      ],
      [['import'], [...data, '--name', '--upstream']],
      [['healthcheck'], ['--config', '--help', '--listen']],
    ];
    for (const [cmd, want] of cases) {
      const r = await cli([...cmd, '--help']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(flagsOf(r.stdout), want.sort(), cmd.join(' '));
    }
    const serve = flagsOf((await cli(['serve', '--help'])).stdout);
    for (const f of ['--listen', '--upstream', '--tag-ttl', '--offline', '--max-size', '--min-free-disk', '--upstream-rate', '--data', '--log-format'])
      assert.ok(serve.includes(f), `serve --help lists ${f}`);
    const prefetch = flagsOf((await cli(['prefetch', '--help'])).stdout);
    assert.ok(prefetch.includes('--upstream') && !prefetch.includes('--listen') && !prefetch.includes('--max-size'), prefetch.join(' '));
  });

  test('check-config prints YAML that, fed back as --config (same env), loads to the same config', async () => {
    const dir = makeTempDir('stevedore-cc-').path;
    const pw = path.join(dir, 'pw');
    writeFileSync(pw, 'secret-from-file\n');
    const first = path.join(dir, 'first.yaml');
    writeFileSync(
      first,
      [
        'listen: 127.0.0.1:5999',
        `data: ${dir}/data`,
        'maxSize: 2GiB',
        'upstreams:',
        '  registry.corp:',
        '    url: https://registry.corp:5000/',
        '    username: robot',
        `    passwordFile: ${pw}`,
        'defaultUpstream: registry.corp',
        'foreign:',
        '  rules: [{ match: "https://*.example.com/*", action: fetch, cache: false }]',
        'warm:',
        '  - refs: [registry.corp/app:1]',
        '    platforms: [linux/arm64/v8]',
        '    every: 1h30m',
        '  - name: nightly',
        '    refs: [registry.corp/db:2]',
        '    platforms: all',
        '    at: ["02:00", "14:30"]',
      ].join('\n'),
    );
    const env = { STEVEDORE_ADMIN_TOKEN: 'a-token-of-twenty-chars', STEVEDORE_TAG_TTL: '90' };
    const r = await cli(['check-config', '--config', first, '--upstream-rate', '20MB/s'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stdout.includes('secret-from-file') && !r.stdout.includes('a-token-of-twenty-chars'), 'no secret printed');
    assert.match(r.stdout, /# Secrets not printed: upstreams\.registry\.corp\.password, adminToken/);
    const printed = path.join(dir, 'printed.yaml');
    writeFileSync(printed, r.stdout);
    const want = loadConfig({ config: first, upstreamRate: '20MB/s' }, env);
    const got = loadConfig({ config: printed }, { ...env, STEVEDORE_UPSTREAM_REGISTRY_CORP_PASSWORD: 'secret-from-file' });
    assert.deepEqual(got, want);
    const again = await cli(['check-config', '--config', printed], env);
    assert.equal(
      again.stdout,
      r.stdout.replace(/\n# Secrets not printed: upstreams\.registry\.corp\.password, adminToken\.\n/, '\n# Secrets not printed: adminToken.\n'),
    );
  });

  test('an unknown STEVEDORE_* variable is refused with one line and exit 2, like an unknown YAML key', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ STEVEDORE_DATTA: '/x' }, /^stevedore: invalid config: environment variable STEVEDORE_DATTA is not a stevedore setting; known: STEVEDORE_CONFIG, /],
      [{ STEVEDORE_UPSTREAM_GHCR_PASSWORD: 'x' }, /STEVEDORE_UPSTREAM_GHCR_PASSWORD is not a stevedore setting: it names no configured upstream/],
      [{ STEVEDORE_PORT: 'tcp://10.0.0.1:5000' }, /STEVEDORE_PORT is not a stevedore setting \(a Kubernetes service link: set enableServiceLinks: false/],
    ];
    for (const [env, message] of cases) {
      const r = await cli(['check-config'], env);
      assert.equal(r.code, 2, r.stdout);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const ok = await cli(['check-config'], { STEVEDORE_UPSTREAM_GHCR_IO_PASSWORD: 'x', STEVEDORE_LOG_LEVEL: 'warn' });
    assert.equal(ok.code, 0, ok.stderr);
  });
});
