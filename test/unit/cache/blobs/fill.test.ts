// Unit tests of src/cache/blobs/fill.ts: the blob fill's readers (hold-back of the last byte, abort on mismatch, late and departing readers).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { BlobFill } from '../../../../src/cache/blobs/fill.ts';
import { DigestMismatchError } from '../../../../src/oci/verify.ts';
import { digestOf, type Digest } from '../../../../src/oci/digest.ts';
import { BlobStore } from '../../../../src/store/blob-store.ts';
import { Metadata } from '../../../../src/store/metadata.ts';
import type { UpstreamResponse } from '../../../../src/upstream/client.ts';
import { makeTempDir, waitFor } from '../../../helpers/tmp.ts';

const tmp = makeTempDir('stevedore-unit-');
after(() => tmp.cleanup());
const store = new BlobStore(tmp.path);
const meta = new Metadata(store.paths.db);
const deps = { store, meta, log: pino({ level: 'silent' }), maxResumes: 0 };
const noResume = (first: UpstreamResponse) => ({ first, resume: () => Promise.reject(new Error('no resume')) });

function upstream(size: number | undefined): { res: UpstreamResponse; body: PassThrough } {
  const body = new PassThrough();
  const headers = size === undefined ? {} : { 'content-length': String(size) };
  return { res: { status: 200, headers, body: body as unknown as UpstreamResponse['body'] }, body };
}

/** Collects what a reader has delivered so far, and how it ended. */
function watch(r: Readable) {
  const s = { bytes: Buffer.alloc(0), ended: false, error: undefined as Error | undefined };
  r.on('data', (c: Buffer) => (s.bytes = Buffer.concat([s.bytes, c])));
  r.on('end', () => (s.ended = true));
  r.on('error', (e) => (s.error = e));
  return s;
}
const tick = () => new Promise((r) => setTimeout(r, 20));
/** Waits (bounded) until cond() holds; no fixed sleeps, so a loaded machine cannot make it flaky. */
const until = (what: string, cond: () => boolean) => waitFor(what, async () => cond() || undefined, 5000, 5);

test('fill: readers get bytes as they arrive but the last byte only after the digest is verified', async () => {
  const data = Buffer.from('0123456789abcdef');
  const digest = digestOf(data);
  const { res, body } = upstream(data.length);
  const fill = await BlobFill.start(deps, noResume(res), digest);
  const whole = watch(fill.reader());
  const slice = watch(fill.reader(2, 5));
  body.write(data);
  await until('15 bytes delivered', () => whole.bytes.length >= data.length - 1 && slice.bytes.length >= 3);
  await tick();
  assert.equal(whole.bytes.length, data.length - 1, 'all but the last byte before the end of the upstream body');
  assert.deepEqual(slice.bytes, data.subarray(2, 5), 'a range also holds back its last byte');
  assert.equal(whole.ended, false);
  body.end();
  await fill.settled;
  await until('readers ended', () => whole.ended && slice.ended);
  assert.deepEqual(whole.bytes, data);
  assert.deepEqual(slice.bytes, data.subarray(2, 6));
  assert.ok(whole.ended && slice.ended);
  assert.equal(meta.blobSize(digest), data.length);
  assert.ok(existsSync(store.paths.blob(digest)));
});

test('fill: wrong bytes abort every reader one byte short and store nothing', async () => {
  const data = Buffer.from('the real content');
  const digest = digestOf(data);
  const { res, body } = upstream(data.length);
  const fill = await BlobFill.start(deps, noResume(res), digest);
  const r = watch(fill.reader());
  body.end(Buffer.from('the fake content'));
  await fill.settled;
  await until('reader errored', () => r.error !== undefined || r.ended);
  assert.equal(fill.state, 'failed');
  assert.ok(fill.error instanceof DigestMismatchError);
  assert.ok(r.error instanceof DigestMismatchError);
  assert.equal(r.ended, false);
  assert.ok(r.bytes.length < data.length);
  assert.equal(meta.blobSize(digest), undefined);
  assert.equal(existsSync(store.paths.blob(digest)), false);
  assert.deepEqual(readdirSync(store.paths.tmpDir), []);
});

test('fill: more bytes than Content-Length, or a body cut short with no resume left, fail the fill', async () => {
  const data = Buffer.from('abc');
  const a = upstream(2);
  const f1 = await BlobFill.start(deps, noResume(a.res), digestOf(data));
  a.body.end(data);
  await f1.settled;
  assert.equal(f1.state, 'failed');
  const b = upstream(10);
  const f2 = await BlobFill.start(deps, noResume(b.res), `sha256:${'0'.repeat(64)}` as Digest);
  const r = watch(f2.reader());
  b.body.write(data);
  b.body.destroy(new Error('connection reset'));
  await f2.settled;
  await until('reader errored', () => r.error !== undefined || r.ended);
  assert.equal(f2.state, 'failed');
  assert.ok(r.error);
  assert.equal(r.ended, false);
});

test('fill: a reader that goes away does not stop the fill or the others', async () => {
  const data = Buffer.alloc(3 << 20, 7);
  const digest = digestOf(data);
  const { res, body } = upstream(data.length);
  const fill = await BlobFill.start(deps, noResume(res), digest);
  const quitter = fill.reader();
  const stayer = watch(fill.reader());
  body.write(data.subarray(0, 1 << 20));
  await until('first MiB delivered', () => stayer.bytes.length > 0);
  quitter.destroy();
  body.end(data.subarray(1 << 20));
  await fill.settled;
  await until('stayer ended', () => stayer.ended || stayer.error !== undefined);
  assert.equal(fill.state, 'done');
  assert.ok(stayer.ended);
  assert.equal(digestOf(stayer.bytes), digest);
});

test('fill: a reader that arrives after the fill finished reads the committed file', async () => {
  const data = Buffer.from('late reader');
  const digest = digestOf(data);
  const { res, body } = upstream(data.length);
  const fill = await BlobFill.start(deps, noResume(res), digest);
  body.end(data);
  await fill.settled;
  await tick();
  const late = watch(fill.reader(5));
  await until('late reader ended', () => late.ended || late.error !== undefined);
  assert.deepEqual(late.bytes, data.subarray(5));
});
