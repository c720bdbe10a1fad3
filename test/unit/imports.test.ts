// Enforces the module map of the README's architecture section by reading every import in src/: each folder is one
// capability and imports only the folders below it, with no exemptions; and no file imports itself through others.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Which folders of src/ each folder may import (besides itself). Top-level files (main.ts, app.ts) compose them all. */
const ALLOWED: Record<string, string[]> = {
  oci: [],
  obs: [],
  sendfile: [],
  store: ['oci'],
  upstream: ['oci'],
  config: ['oci', 'upstream'],
  cache: ['oci', 'store', 'upstream'],
  foreign: ['oci', 'store', 'upstream', 'cache', 'config'],
  jobs: ['oci', 'store', 'upstream', 'cache', 'foreign', 'config'],
  http: ['oci', 'obs', 'sendfile', 'cache', 'foreign', 'jobs'],
  cli: ['oci', 'obs', 'sendfile', 'store', 'upstream', 'config', 'cache', 'foreign', 'jobs', 'http', '(top level)'],
};
/** Packages a folder must not use directly (http/: no SQL, no undici, no fs). */
const FORBIDDEN_PACKAGES: Record<string, RegExp> = {
  http: /^(better-sqlite3|undici|node:fs|fs)(\/|$)/,
  oci: /^(better-sqlite3|undici|hono|@hono\/|node:fs|fs)(\/|$)/,
  store: /^(undici|hono|@hono\/)(\/|$)/,
  upstream: /^(better-sqlite3|hono|@hono\/)(\/|$)/,
  cache: /^(hono|@hono\/)(\/|$)/,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : /\.tsx?$/.test(p) ? [p] : [];
  });
}

/** [specifier, typeOnly] of every static and dynamic import. */
function imports(text: string): [string, boolean][] {
  const out: [string, boolean][] = [];
  for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)) out.push([m[3]!, m[2] !== undefined]);
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push([m[1]!, false]);
  for (const m of text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push([m[1]!, false]);
  return out;
}

const areaOf = (rel: string): string => (rel.includes(path.sep) ? rel.split(path.sep)[0]! : '(top level)');

/** src-relative file -> src-relative files it imports (type-only imports included: they are dependencies too). */
function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of files(SRC)) {
    const deps = imports(readFileSync(file, 'utf8'))
      .filter(([spec]) => spec.startsWith('.'))
      .map(([spec]) => path.relative(SRC, path.resolve(path.dirname(file), spec)).replace(/\.js$/, '.ts'))
      // A .js specifier names a .ts file, or a .tsx one (the status page's JSX).
      .map((rel) => (existsSync(path.join(SRC, rel)) ? rel : rel.replace(/\.ts$/, '.tsx')));
    g.set(path.relative(SRC, file), deps);
  }
  return g;
}

function violations(): string[] {
  const out: string[] = [];
  for (const file of files(SRC)) {
    const rel = path.relative(SRC, file);
    const area = areaOf(rel);
    if (area === '(top level)') continue;
    if (!(area in ALLOWED)) {
      out.push(`${rel}: folder ${area}/ has no rule in ALLOWED (a new capability: add it to the module map)`);
      continue;
    }
    for (const [spec] of imports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const targetArea = areaOf(path.relative(SRC, path.resolve(path.dirname(file), spec)));
        if (targetArea !== area && !ALLOWED[area]!.includes(targetArea))
          out.push(`${rel} imports ${spec} (${area}/ may import ${ALLOWED[area]!.join(', ') || 'nothing of ours'})`);
      } else if (FORBIDDEN_PACKAGES[area]?.test(spec)) {
        out.push(`${rel} uses ${spec} directly`);
      }
    }
  }
  return out;
}

/** Every import cycle among files, each as the path that closes it. */
export function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of g.get(f) ?? []) {
      if (state.get(d) === 'open') found.push([...stack.slice(stack.indexOf(d)), d]);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...g.keys()].sort()) if (!state.has(f)) visit(f);
  return found;
}

test('every import in src/ respects the module map, without exemptions', () => {
  assert.deepEqual(violations(), []);
});

test('no import cycle among the files of src/ (type-only imports count)', () => {
  assert.deepEqual(
    cycles(graph()).map((c) => c.join(' -> ')),
    [],
  );
});

test('the folder rules themselves have no cycle', () => {
  const g = new Map(Object.entries(ALLOWED).map(([a, deps]) => [a, deps.filter((d) => d !== '(top level)')]));
  assert.deepEqual(cycles(g), []);
});

test('the cycle finder finds a cycle through three files and none in a chain', () => {
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.deepEqual(cycles(g), [['a.ts', 'b.ts', 'c.ts', 'a.ts']]);
  assert.deepEqual(
    cycles(
      new Map([
        ['a.ts', ['b.ts']],
        ['b.ts', ['c.ts']],
      ]),
    ),
    [],
  );
});

test('the import reader sees static, type-only, re-export and dynamic imports', () => {
  const got = imports(
    "import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('../e.js');\n",
  );
  assert.deepEqual(got, [
    ['./a.js', false],
    ['../b.js', true],
    ['./c.js', false],
    ['./d.js', false],
    ['../e.js', false],
  ]);
});
