// Shared by the deploy/ and Dockerfile tests: the deploy/ file list, per-format parsing, the real config loader, mutations.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { ConfigError, loadConfig, type Config } from '../../src/config/load.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const DEPLOY = path.join(ROOT, 'deploy');
export const rel = (file: string): string => path.relative(ROOT, file);

/** Parsed YAML/TOML, walked loosely: a missing field is a reported problem, not a type error. */
// biome-ignore lint/suspicious/noExplicitAny: walking untyped YAML/TOML is what this type is for
export type Obj = Record<string, any>;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stevedore-deploy-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
function tmpFile(name: string, text: string): string {
  const file = path.join(tmp, `${tmpCount++}-${name}`);
  writeFileSync(file, text);
  return file;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? walk(p) : [p];
    })
    .sort();
}

/** How each file under deploy/ is checked; a file with no handler fails the suite (nothing ships unchecked). */
export type Kind = 'yaml' | 'json' | 'toml' | 'systemd' | 'markdown' | 'haproxy' | 'nginx';
export function kindOf(file: string): Kind | undefined {
  const base = path.basename(file);
  if (/\.ya?ml$/.test(base)) return 'yaml';
  if (base.endsWith('.json')) return 'json';
  if (base.endsWith('.toml') || base === 'registries.conf') return 'toml';
  if (/\.(service|sysusers)$/.test(base)) return 'systemd';
  if (base.endsWith('.md')) return 'markdown';
  if (base === 'haproxy.cfg') return 'haproxy';
  // Loaded by the real nginx in test/integration/accel.test.ts; here only its block structure is checked.
  if (base.endsWith('.conf') && path.basename(path.dirname(file)) === 'nginx') return 'nginx';
  return undefined;
}

/** Debian's haproxy checks the config (`haproxy -c`): unresolvable server names are warnings, not errors. */
function haproxyProblems(text: string): string[] {
  const r = spawnSync(process.env.STEVEDORE_HAPROXY_BIN ?? 'haproxy', ['-c', '-f', tmpFile('haproxy.cfg', text)], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return [`haproxy -c: ${r.error.message}`];
  if (r.status === 0) return [];
  const out = `${r.stderr}${r.stdout}`;
  const alerts = out.split('\n').filter((l) => l.includes('[ALERT]'));
  return alerts.length > 0 ? alerts : [out.trim() || `haproxy -c exited ${r.status}`];
}

/** Parse errors of one file's text ([] when it parses); YAML files may hold several documents. */
export function parseProblems(kind: Kind, text: string): string[] {
  try {
    if (kind === 'yaml') return parseAllDocuments(text).flatMap((d) => ('errors' in d ? d.errors.map((e) => e.message) : []));
    if (kind === 'json') JSON.parse(text);
    if (kind === 'toml') parseToml(text);
    if (kind === 'haproxy') return haproxyProblems(text);
    if (kind === 'nginx') {
      let depth = 0;
      for (const line of text.split('\n').map((l) => l.replace(/#.*$/, ''))) {
        for (const ch of line) depth += ch === '{' ? 1 : ch === '}' ? -1 : 0;
        if (depth < 0) return ['nginx: "}" without "{"'];
      }
      if (depth !== 0) return ['nginx: unbalanced braces'];
    }
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

export function yamlDocs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter((d) => d !== null && d !== undefined);
}

/** Loads a config text with the real loader, with an empty environment. */
export function loadText(text: string, name = 'config.yaml'): Config {
  return loadConfig({ config: tmpFile(name, text) }, {});
}

/** `from` -> `to` in text; fails if `from` is not there (a mutation that changes nothing proves nothing). */
export function mutate(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `mutation ${String(from)} did not apply`);
  return out;
}

/** Asserts that loading text throws a ConfigError whose message names key. */
export function assertRejects(text: string, key: string): void {
  assert.throws(
    () => loadText(text),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      assert.ok(e.message.includes(key), `"${e.message}" names ${key}`);
      return true;
    },
  );
}

/** The server's shutdown: drain for GRACE_MS, then let fills finish for up to GRACE_MS more. */
export function worstShutdownSeconds(): number {
  const m = /GRACE_MS\s*=\s*([\d_]+)/.exec(readFileSync(path.join(ROOT, 'src/cli/serve.ts'), 'utf8'));
  assert.ok(m, 'GRACE_MS not found in src/cli/serve.ts: update worstShutdownSeconds in test/helpers/deploy.ts to the new shutdown logic');
  return (2 * Number(m[1]!.replace(/_/g, ''))) / 1000;
}

/** Every file under deploy/, sorted. */
export const FILES = walk(DEPLOY);
