// Unit tests of src/cache/eviction.ts (with store/usage) on a temp data dir, no network: LRU under a budget, pin closures, shared blobs, in-use blobs, dry-run.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { Eviction } from '../../../src/cache/eviction.ts';
import type { Digest } from '../../../src/oci/digest.ts';
import type { BlobStore } from '../../../src/store/blob-store.ts';
import { blobsOf, digests, fixture, snapshot, UP } from '../../helpers/eviction-fixture.ts';
import { waitFor } from '../../helpers/tmp.ts';

describe('eviction', () => {
  test('a pinned index keeps its child manifests and their configs and layers, even when least recently used', async () => {
    const f = fixture();
    const amd = await f.image('pinned', [], 2);
    const arm = await f.image('pinned', [], 2);
    const idx = f.index('pinned', ['v1'], [amd, arm]);
    const other = await f.image('other', ['v1'], 2);
    f.usage.pin({ upstream: UP, repo: 'pinned', reference: 'v1', digest: idx.digest }, f.now);
    const kept = [idx, amd, arm, ...blobsOf(amd), ...blobsOf(arm)];
    assert.deepEqual(f.usage.pinnedClosure(), new Set(kept.map((b) => b.digest)));

    const r = await f.eviction().sweep({ force: 1e12 });
    assert.deepEqual(digests(r), new Set([other, ...blobsOf(other)].map((b) => b.digest)));
    assert.equal(r.short, true, 'the budget cannot be met: the rest is pinned');
    for (const b of [...blobsOf(amd), ...blobsOf(arm)]) assert.ok(f.onDisk(b) && f.meta.blobSize(b.digest) === b.size, `pinned blob ${b.digest} kept`);
    for (const m of [idx, amd, arm]) assert.ok(f.meta.getManifest(m.digest), `pinned manifest ${m.digest} kept`);
    assert.equal(f.meta.getTag(UP, 'pinned', 'v1')?.digest, idx.digest);
    for (const b of blobsOf(other)) assert.ok(!f.onDisk(b) && f.meta.blobSize(b.digest) === undefined);

    assert.equal(f.usage.unpin(UP, 'pinned', 'v1'), true);
    const r2 = await f.eviction().sweep({ force: 1e12 });
    assert.deepEqual(digests(r2), new Set(kept.map((b) => b.digest)), 'unpinned, the whole DAG goes');
    assert.equal(f.total(), 0);
  });

  test('a blob shared by two images is evicted only once neither kept manifest references it', async () => {
    const f = fixture();
    const shared = await f.blob(); // oldest of all: plain LRU would take it first
    const a = await f.image('a', ['v1'], 1, [shared]);
    const b = await f.image('b', ['v1'], 1, [shared]);
    const onlyA = [a.config, a.layers[1]!];
    const r = await f.eviction().sweep({ force: a.size + onlyA.reduce((n, x) => n + x.size, 0) });
    assert.deepEqual(digests(r), new Set([a, ...onlyA].map((x) => x.digest)));
    assert.ok(f.onDisk(shared) && f.meta.blobSize(shared.digest) === shared.size, 'still referenced by b');
    for (const x of blobsOf(b)) assert.ok(f.onDisk(x));

    const r2 = await f.eviction().sweep({ force: 1e12 });
    const order = r2.evicted.map((e) => e.digest);
    assert.ok(order.includes(shared.digest));
    assert.ok(order.indexOf(b.digest) < order.indexOf(shared.digest), 'the last manifest referencing it went first');
    assert.ok(!f.onDisk(shared));
  });

  test('blobs being streamed or filled are skipped; the next least recently used one goes instead', async () => {
    const f = fixture();
    const [x, y, z] = [await f.blob(), await f.blob(), await f.blob()];
    f.inUse.add(x.digest);
    const ev = f.eviction(f.total() - 1);
    const r = await ev.sweep();
    assert.deepEqual(
      r.evicted.map((e) => e.digest),
      [y.digest],
    );
    assert.ok(f.onDisk(x) && !f.onDisk(y) && f.onDisk(z));
    const all = await ev.sweep({ force: 1e12 });
    assert.deepEqual(
      all.evicted.map((e) => e.digest),
      [z.digest],
    );
    assert.equal(all.short, true);
    assert.ok(f.onDisk(x) && f.meta.blobSize(x.digest) === x.size, 'in use: never evicted');
  });

  test('cached foreign layers are evicted last: only when nothing else is left', async () => {
    const f = fixture();
    const [foreignBlob, plainOld, plainNew] = [await f.blob(), await f.blob(), await f.blob()];
    f.meta.db
      .prepare(
        "INSERT INTO foreign_layers (digest, size, media_type, is_foreign, urls, first_seen, last_seen) VALUES (?, ?, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', 1, '[]', 0, 0)",
      )
      .run(foreignBlob.digest, foreignBlob.size);
    const ev = f.eviction(f.total() - 1);
    assert.deepEqual(
      (await ev.sweep()).evicted.map((e) => e.digest),
      [plainOld.digest],
      'the oldest non-foreign blob goes, not the older foreign one',
    );
    const all = await ev.sweep({ force: 1e12 });
    assert.deepEqual(
      all.evicted.map((e) => e.digest),
      [plainNew.digest, foreignBlob.digest],
      'the foreign layer only as a last resort',
    );
  });

  test('a blob fetched and committed again while the sweep is deleting files keeps its new file (row and file agree)', async () => {
    const f = fixture();
    const y = await f.blob();
    const bytes = randomBytes(5000);
    const x = await f.blob(bytes);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // Deleting y's file (first, least recently used) waits at a gate: the window in which x's row is gone, its file not yet.
    const store = Object.assign(Object.create(f.store) as BlobStore, {
      delete: async (d: Digest) => {
        if (d === y.digest) await gate;
        await f.store.delete(d);
      },
    });
    const ev = new Eviction({ meta: f.meta, usage: f.usage, store, access: f.access, log: pino({ level: 'silent' }), inUse: () => false });
    const sweeping = ev.sweep({ force: 1e12 });
    await waitFor('the rows are gone', () => f.meta.blobSize(x.digest) === undefined, 5_000, 5);
    await f.blob(bytes); // a client asked for x meanwhile: a fill committed it again (file, then row)
    open();
    assert.deepEqual(
      (await sweeping).evicted.map((e) => e.digest),
      [y.digest, x.digest],
    );
    assert.ok(!f.onDisk(y));
    assert.equal(f.meta.blobSize(x.digest), x.size);
    assert.ok(f.onDisk(x), 'a row whose file was deleted under it would count in the budget and cost a download');
  });

  test('a sweep asked for while one runs is not lost: one more sweep runs after it', async () => {
    const f = fixture();
    const y = await f.blob();
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const store = Object.assign(Object.create(f.store) as BlobStore, {
      delete: async (d: Digest) => {
        if (d === y.digest) await gate;
        await f.store.delete(d);
      },
    });
    const budget = f.total() - 1;
    const ev = new Eviction({ meta: f.meta, usage: f.usage, store, access: f.access, log: pino({ level: 'silent' }), inUse: () => false, maxSize: budget });
    const first = ev.sweep();
    await waitFor('the first sweep decided', () => f.meta.blobSize(y.digest) === undefined, 5_000, 5);
    const late = await f.blob(); // committed after the first sweep measured the store: over budget again
    assert.equal(ev.sweep(), first, 'joins the running sweep');
    open();
    assert.deepEqual(
      (await first).evicted.map((e) => e.digest),
      [y.digest],
    );
    await waitFor('the second sweep', () => f.meta.blobSize(late.digest) === undefined, 5_000, 5);
    assert.ok(f.total() <= budget);
  });

  test('least recently used first: a recently pulled image survives, the store ends within its budget', async () => {
    const f = fixture();
    const a = await f.image('a', ['v1'], 2);
    const b = await f.image('b', ['v1'], 2);
    const c = await f.image('c', ['v1'], 2);
    f.now += 1000;
    for (const d of [a, ...blobsOf(a)]) f.access.touch(d.digest); // pulled again: flushed by the sweep
    const budget = f.total() - b.size - b.config.size - 1; // b's manifest and more than its config must go
    const r = await f.eviction(budget).sweep();
    assert.ok(f.total() <= budget, `${f.total()} <= ${budget}`);
    assert.ok(r.freedBytes >= r.needed);
    assert.equal(r.evicted[0]!.digest, b.digest, 'b is the least recently used root');
    // Every evicted object names the image it belonged to (its blobs inherit the image's tag).
    assert.ok(r.evicted.length > 1 && r.evicted.every((e) => e.names.length > 0 && e.names[0]!.includes('/')), JSON.stringify(r.evicted));
    for (const x of [a, c]) assert.ok(f.meta.getManifest(x.digest));
    for (const x of [...blobsOf(a), ...blobsOf(c)]) assert.ok(f.onDisk(x));
  });

  test('a sweep logs which images went and how many bytes each freed, and keeps it for the status page', async () => {
    const f = fixture();
    const a = await f.image('a', ['v1'], 2);
    await f.image('b', ['v1'], 2);
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
    const aBytes = a.size + a.config.size + a.layers.reduce((n, l) => n + l.size, 0);
    const ev = f.eviction(f.total() - aBytes, log);
    const r = await ev.sweep();
    assert.equal(r.freedBytes, aBytes, 'a whole: manifest, config, layers');
    const line = lines.find((l) => Array.isArray(l.images))!;
    assert.deepEqual(line.images, [{ image: `${UP}/a:v1`, bytes: aBytes }]);
    assert.equal(line.msg, `eviction sweep: evicted 1 image(s), ${aBytes} bytes: ${UP}/a:v1 (${aBytes} B)`);
    assert.deepEqual(
      ev.recentSweeps.map((s) => s.images),
      [[{ image: `${UP}/a:v1`, bytes: aBytes }]],
    );
  });

  test('evicting a manifest removes its tag mappings and references (links stay); its blobs become candidates', async () => {
    const f = fixture();
    const img = await f.image('app', ['v1', 'latest'], 2);
    const keep = await f.image('app', ['v2'], 1);
    const r = await f.eviction().sweep({ force: img.size });
    assert.deepEqual(r.evicted, [{ kind: 'manifest', digest: img.digest, size: img.size, names: [`${UP}/app:latest`, `${UP}/app:v1`] }]);
    assert.equal(f.meta.getManifest(img.digest), undefined);
    assert.equal(f.meta.getTag(UP, 'app', 'v1'), undefined);
    assert.equal(f.meta.getTag(UP, 'app', 'latest'), undefined);
    assert.deepEqual(f.meta.listTags(UP, 'app'), ['v2']);
    // "This digest belongs to app" stays true: the next pull fetches it again from app's upstream.
    assert.equal(f.meta.isLinked(UP, 'app', img.digest), true);
    assert.deepEqual(f.meta.db.prepare('SELECT COUNT(*) AS n FROM manifest_refs WHERE manifest = ?').get(img.digest), { n: 0 });
    assert.deepEqual(
      f.usage
        .unreferencedBlobs()
        .map((x) => x.digest)
        .sort(),
      blobsOf(img)
        .map((x) => x.digest)
        .sort(),
    );
    assert.ok(f.meta.getManifest(keep.digest) && f.meta.getTag(UP, 'app', 'v2'));
  });

  test('dry-run changes no row and no file, and reports exactly what the real run then does', async () => {
    const f = fixture();
    const shared = await f.blob();
    const old = await f.image('old', ['v1'], 2, [shared]);
    const child = await f.image('p', [], 1);
    const idx = f.index('p', ['v1'], [child]);
    f.usage.pin({ upstream: UP, repo: 'p', reference: 'v1', digest: idx.digest }, f.now);
    await f.image('mid', ['v1'], 2, [shared]);
    const busy = await f.blob();
    f.inUse.add(busy.digest);
    await f.blob();
    await f.image('new', ['v1'], 3);
    const budget = Math.floor(f.total() / 3);
    const before = snapshot(f.tmp.path);
    const dry = await f.eviction(budget).sweep({ dryRun: true });
    assert.deepEqual(snapshot(f.tmp.path), before);
    assert.ok(dry.evicted.length > 3 && dry.freedBytes >= dry.needed);
    assert.ok(!digests(dry).has(busy.digest) && !digests(dry).has(idx.digest));
    assert.ok(digests(dry).has(old.digest));

    const real = await f.eviction(budget).sweep();
    assert.deepEqual(real, dry);
    assert.notDeepEqual(snapshot(f.tmp.path), before);
    assert.ok(f.total() <= budget);
    for (const e of real.evicted) if (e.kind === 'blob') assert.ok(!existsSync(f.store.paths.blob(e.digest)));
  });
});
