// Unit tests of src/cache/blobs/elsewhere.ts: following a download another process writes (its partial file and lock).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { followElsewhere, holderElsewhere } from '../../../../src/cache/blobs/elsewhere.ts';
import type { Digest } from '../../../../src/oci/digest.ts';
import { BlobStore } from '../../../../src/store/blob-store.ts';
import { makeTempDir, sleep } from '../../../helpers/tmp.ts';

const tmp = makeTempDir('stevedore-unit-elsewhere-');
after(() => tmp.cleanup());
const store = new BlobStore(tmp.path);
const digestOf = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

async function collect(r: Readable): Promise<{ bytes: Buffer; error?: Error }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of r) parts.push(c as Buffer);
    return { bytes: Buffer.concat(parts) };
  } catch (e) {
    return { bytes: Buffer.concat(parts), error: e as Error };
  }
}

/** Plays the other process: takes the lock, writes the partial in pieces, then commits (rename) or gives up. */
async function otherProcess(digest: Digest, body: Buffer, end: 'commit' | 'fail'): Promise<void> {
  const partial = store.paths.partial(digest);
  writeFileSync(`${partial}.lock`, '1');
  writeFileSync(partial, '');
  for (let at = 0; at < body.length; at += 100_000) {
    if (end === 'fail' && at > body.length / 2) break;
    appendFileSync(partial, body.subarray(at, at + 100_000));
    await sleep(5);
  }
  if (end === 'commit') {
    mkdirSync(path.dirname(store.paths.blob(digest)), { recursive: true });
    renameSync(partial, store.paths.blob(digest));
  } else {
    rmSync(partial);
  }
  rmSync(`${partial}.lock`);
}

test('follows the growing file to a verified end, also for a range', async () => {
  const body = randomBytes(1_500_000);
  const digest = digestOf(body);
  const writer = otherProcess(digest, body, 'commit');
  const [all, part] = await Promise.all([
    collect(followElsewhere(store, digest, body.length)),
    collect(followElsewhere(store, digest, body.length, 1000, 1999)),
    writer,
  ]);
  assert.equal(all.error, undefined);
  assert.ok(all.bytes.equals(body));
  assert.ok(part.bytes.equals(body.subarray(1000, 2000)));
});

test('the other process giving up fails the follower one byte short of a clean end', async () => {
  const body = randomBytes(800_000);
  const digest = digestOf(body);
  const [got] = await Promise.all([collect(followElsewhere(store, digest, body.length)), otherProcess(digest, body, 'fail')]);
  assert.ok(got.error, 'the response fails');
  assert.ok(got.bytes.length < body.length);
});

test('bytes that do not hash to the digest never end cleanly', async () => {
  const body = randomBytes(300_000);
  const wrong = Buffer.from(body);
  wrong[1234] = wrong[1234]! ^ 0xff;
  const digest = digestOf(body);
  const [got] = await Promise.all([collect(followElsewhere(store, digest, body.length)), otherProcess(digest, wrong, 'commit')]);
  assert.ok(got.error, 'a mismatch errors');
  assert.ok(got.bytes.length < body.length, 'never the whole body');
});

test('the upstream a process downloads from is known as soon as its lock is (one atomic file): no window in which another process sees the lock but no holder', async () => {
  const digest = digestOf(randomBytes(64));
  mkdirSync(store.paths.partialDir, { recursive: true });
  const claimed = await store.claimPartial(digest, 'upstream-a');
  assert.ok(claimed, 'claimed');
  try {
    // Right after the claim, with nothing else written: the other process's view.
    assert.equal(await holderElsewhere(store, digest), 'upstream-a');
    // A second claim (another process) is refused while the first holds it.
    assert.equal(await store.claimPartial(digest, 'upstream-b'), undefined);
    // The lock file is not mistaken for a partial download.
    assert.deepEqual(
      (await store.partials()).map((p) => path.basename(p.path)),
      [path.basename(store.paths.partial(digest))],
    );
  } finally {
    await claimed.abandon();
  }
  assert.equal(await holderElsewhere(store, digest), undefined, 'no holder once released');
});
