// Enforces the module boundaries of DESIGN.md by reading every import in src/: routes are thin, the cache layer
// decides, and the store and the upstream client know nothing of each other.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Which top-level areas of src/ each area may import (besides itself). */
const ALLOWED: Record<string, string[]> = {
  oci: [],
  store: ['oci'],
  upstream: ['oci'],
  cache: ['oci', 'store', 'upstream'],
  http: ['cache', 'oci'],
  bundle: ['oci', 'store', 'cache', 'upstream'],
};
/** Packages an area must not use directly (http/: no SQL, no undici, no fs). */
const FORBIDDEN_PACKAGES: Record<string, RegExp> = {
  http: /^(better-sqlite3|undici|node:fs|fs)(\/|$)/,
  oci: /^(better-sqlite3|undici|hono|@hono\/|node:fs|fs)(\/|$)/,
  store: /^(undici|hono|@hono\/)(\/|$)/,
  upstream: /^(better-sqlite3|hono|@hono\/)(\/|$)/,
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
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

function violations(): string[] {
  const out: string[] = [];
  for (const file of files(SRC)) {
    const rel = path.relative(SRC, file);
    const area = rel.includes(path.sep) ? rel.split(path.sep)[0]! : undefined;
    if (!area || !(area in ALLOWED)) continue; // top-level files (app, cli, config, ...) compose the areas
    for (const [spec, typeOnly] of imports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
        const targetArea = target.includes(path.sep) ? target.split(path.sep)[0]! : '(top level)';
        if (targetArea === area) continue;
        // Type-only imports of the config's shapes are data, not a dependency on how config is loaded.
        if (typeOnly && /^(config|foreign-config|warm-config)\.js$/.test(target)) continue;
        if (!ALLOWED[area]!.includes(targetArea)) out.push(`${rel} imports ${spec} (${area}/ may import ${ALLOWED[area]!.join(', ') || 'nothing of ours'})`);
      } else if (FORBIDDEN_PACKAGES[area]?.test(spec)) {
        out.push(`${rel} uses ${spec} directly`);
      }
    }
  }
  return out;
}

test('every import in src/ respects the module boundaries', () => {
  assert.deepEqual(violations(), []);
});

test('the import reader sees static, type-only, re-export and dynamic imports', () => {
  const got = imports("import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('../e.js');\n");
  assert.deepEqual(got, [['./a.js', false], ['../b.js', true], ['./c.js', false], ['./d.js', false], ['../e.js', false]]);
});
