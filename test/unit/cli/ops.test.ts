// Unit tests of src/cli/ops.ts: gc, du, pin, pins and the read-only commands as a child process on an eviction fixture's data dir.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import type { Digest } from '../../../src/oci/digest.ts';
import { Usage } from '../../../src/store/usage.ts';
import { fixture, snapshot, UP } from '../../helpers/eviction-fixture.ts';
import { makeTempDir, runCommand } from '../../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../../dist/main.js');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STEVEDORE_')));
const run = (args: string[]) => runCommand(process.execPath, [MAIN, ...args], { timeoutMs: 30_000, env });

describe('operator commands (child process on the data dir)', () => {
  test('gc --dry-run names images and changes nothing; gc frees exactly that; du reports', async () => {
    const f = fixture();
    const a = await f.image('a', ['v1'], 3);
    await f.image('b', ['v1'], 3);
    const stray = await f.blob(); // no manifest references it: goes first, then a (the LRU image) and its config
    const budget = f.total() - stray.size - a.size - 1;
    f.meta.close();
    const cli = (...args: string[]) => run([...args, '--data', f.tmp.path, '--log-level', 'warn']);
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
    // Each names what it belonged to: the image by its tag (its config inherits it); a stray blob by nothing.
    assert.match(would[1]!, new RegExp(` ${UP}/a:v1$`));
    assert.match(would[2]!, new RegExp(` ${UP}/a:v1$`));
    assert.match(would[0]!, / \(no name\)$/);
    assert.match(dry.stdout, /would free .* needed \(3 objects; budget maxSize /);

    const real = await cli('gc', '--max-size', String(budget));
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual(lines(real.stdout, 'evicted '), would);
    for (const l of would.filter((x) => x.startsWith('blob '))) assert.ok(!existsSync(f.store.paths.blob(l.split(' ')[1] as Digest)), l);
    const db = new Database(f.store.paths.db, { readonly: true });
    const t = new Usage(db).totals();
    const repos = new Usage(db).byRepository();
    db.close();
    assert.ok(t.blobBytes + t.manifestBytes <= budget);

    const again = await cli('gc', '--max-size', String(budget));
    assert.match(again.stdout, /freed 0 B of 0 B needed \(0 objects/);
    const du = await cli('du');
    assert.equal(du.code, 0, du.stderr);
    assert.match(du.stdout, new RegExp(`^total .*: ${t.blobs} blobs .*, ${t.manifests} manifests`, 'm'));
    const json = await cli('du', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { totalBytes: t.blobBytes + t.manifestBytes, ...t, partials: { count: 0, bytes: 0 }, repositories: repos });
  });

  test('gc uses the budget of the config file, and says so when none is set', async () => {
    const f = fixture();
    await f.image('a', ['v1'], 2);
    const b = await f.image('b', ['v1'], 2);
    f.meta.close();
    const none = await run(['gc', '--data', f.tmp.path]);
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stdout, /^no storage budget set \(maxSize or minFreeDisk in the config, --max-size, --min-free-disk\): nothing to evict\n$/);
    const config = path.join(makeTempDir('stevedore-gc-cfg-').path, 'config.yaml');
    writeFileSync(config, `data: ${f.tmp.path}\nmaxSize: ${b.size + 10}\n`);
    const r = await run(['gc', '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`evicted manifest \\S+ .* ${UP}/a:v1\\n`));
    assert.match(r.stdout, /; budget maxSize /);
  });

  test('pin refuses an image that is not cached, naming prefetch --pin; pins says when there are none', async () => {
    const f = fixture();
    const a = await f.image('a', ['v1'], 2);
    await f.blob(); // something else in the store
    const missing = await f.image('partial', ['v1'], 1);
    f.meta.deleteBlob(missing.layers[0]!.digest); // its layer is not cached
    f.meta.close();
    const cli = (...args: string[]) => run([...args, '--data', f.tmp.path, ...(args[0] === 'pin' ? ['--upstream', `${UP}=http://127.0.0.1:9`] : [])]);
    const none = await cli('pins');
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, 'no pinned images (pin one with: stevedore pin REF, or stevedore prefetch --pin REF)\n');
    for (const [ref, why] of [
      [`${UP}/nothere:1`, 'tag unknown here'],
      [`${UP}/partial:v1`, `blob ${missing.layers[0]!.digest} missing`],
    ] as const) {
      const r = await cli('pin', ref);
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.stderr, `stevedore: ${ref} is not cached (${why}); fetch and pin it with: stevedore prefetch --pin ${ref}\n`);
    }
    // A refused ref in the list pins nothing at all.
    assert.equal((await cli('pin', `${UP}/a:v1`, `${UP}/nothere:1`)).code, 1);
    assert.equal((await cli('pins')).stdout, none.stdout);
    const ok = await cli('pin', `${UP}/a:v1`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `pinned ${UP}/a:v1 -> ${a.digest}\n`);
    assert.match((await cli('pins')).stdout, new RegExp(`^${UP}/a:v1 ${a.digest} `));
    const bad = await cli('pin', 'Not/A//Ref');
    assert.equal(bad.code, 2, 'an invalid ref is a usage error');
    assert.match(bad.stderr, /^stevedore: pin: invalid image reference "Not\/A\/\/Ref"/);
  });

  test('an index pins when at least one platform is completely cached; never-pulled platforms are not needed', async () => {
    const f = fixture();
    const amd = await f.image('multi', [], 1);
    const arm = await f.image('multi', [], 1);
    const idx = f.index('multi', ['v1'], [amd, arm]);
    const gone = f.index('none', ['v1'], [await f.image('none', [], 1)]);
    f.usage.deleteManifest(arm.digest); // arm was never pulled: its manifest is not here
    f.usage.deleteManifest(JSON.parse(f.meta.getManifest(gone.digest)!.body.toString()).manifests[0].digest);
    f.meta.close();
    const pin = (ref: string) => run(['pin', ref, '--data', f.tmp.path, '--upstream', `${UP}=http://127.0.0.1:9`]);
    const ok = await pin(`${UP}/multi:v1`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `pinned ${UP}/multi:v1 -> ${idx.digest} (1 of 2 platforms cached)\n`);
    const none = await pin(`${UP}/none:v1`);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /is not cached \(no platform of the index is cached\); fetch and pin it with: stevedore prefetch --pin /);
  });

  test('read-only commands refuse a data dir that does not exist, with one line, and create nothing', async () => {
    const dir = path.join(makeTempDir('stevedore-nodata-').path, 'typo');
    for (const cmd of [['du'], ['pins'], ['verify'], ['gc'], ['foreign', 'list']]) {
      const r = await run([...cmd, '--data', dir, ...(cmd[0] === 'gc' ? ['--max-size', '1GB'] : [])]);
      assert.equal(r.code, 1, `${cmd.join(' ')}: ${r.stdout}`);
      assert.equal(r.stderr, `stevedore: ${cmd.join(' ')}: no stevedore data dir at ${dir} (no metadata.db); give --data DIR or STEVEDORE_DATA\n`);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(dir), `${cmd.join(' ')} created nothing`);
    }
  });
});
