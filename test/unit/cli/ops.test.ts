// Unit tests of src/cli/ops.ts: the gc and du commands as a child process on an eviction fixture's data dir (dry-run changes nothing, gc frees exactly that, du reports).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { Digest } from '../../../src/oci/digest.ts';
import { Usage } from '../../../src/store/usage.ts';
import { fixture, snapshot } from '../../helpers/eviction-fixture.ts';
import { runCommand } from '../../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../../dist/main.js');

describe('gc and du commands (child process on the data dir)', () => {
  test('gc --dry-run prints the decisions and changes nothing; gc frees exactly those; du reports', async () => {
    const f = fixture();
    const a = await f.image('a', ['v1'], 3);
    await f.image('b', ['v1'], 3);
    const stray = await f.blob(); // no manifest references it: goes first, then a (the LRU image) and its config
    const budget = f.total() - stray.size - a.size - 1;
    f.meta.close();
    const cli = (...args: string[]) => runCommand(process.execPath, [MAIN, ...args, '--data', f.tmp.path, '--log-level', 'warn'], { timeoutMs: 30_000 });
    const lines = (out: string, verb: string) =>
      out
        .split('\n')
        .filter((l) => l.startsWith(verb))
        .map((l) => l.slice(verb.length));

    const before = snapshot(f.tmp.path);
    const dry = await cli('gc', '--dry-run', '--max-size', String(budget));
    assert.equal(dry.code, 0, dry.stderr);
    assert.deepEqual(snapshot(f.tmp.path), before);
    const would = lines(dry.stdout, 'would evict ');
    assert.deepEqual(
      would.map((l) => l.split(' ').slice(0, 2).join(' ')),
      [`blob ${stray.digest}`, `manifest ${a.digest}`, `blob ${a.config.digest}`],
      dry.stdout,
    );
    assert.match(dry.stdout, /would free /);

    const real = await cli('gc', '--max-size', String(budget));
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual(lines(real.stdout, 'evicted '), would);
    for (const l of would.filter((x) => x.startsWith('blob '))) assert.ok(!existsSync(f.store.paths.blob(l.split(' ')[1] as Digest)), l);
    const db = new Database(f.store.paths.db, { readonly: true });
    const t = new Usage(db).totals();
    db.close();
    assert.ok(t.blobBytes + t.manifestBytes <= budget);

    const again = await cli('gc', '--max-size', String(budget));
    assert.match(again.stdout, /freed 0 B of 0 B needed \(0 objects\)/);
    const du = await cli('du');
    assert.equal(du.code, 0, du.stderr);
    assert.match(du.stdout, new RegExp(`^total .*: ${t.blobs} blobs .*, ${t.manifests} manifests`, 'm'));
  });
});
