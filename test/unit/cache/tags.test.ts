// Unit tests of src/cache/tags.ts against a scripted upstream: hostile tag lists are bounded (bytes, tags, pages,
// concurrent fetches, cached bytes), unusable answers are 502, and a fetch nobody waits for any more stops.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { MAX_LIST_BYTES, MAX_TAGS, Tags } from '../../../src/cache/tags.ts';
import { OciError } from '../../../src/oci/errors.ts';
import type { Metadata } from '../../../src/store/metadata.ts';
import type { UpstreamSender } from '../../../src/upstream/chain.ts';
import type { UpstreamResponse } from '../../../src/upstream/client.ts';
import type { Target } from '../../../src/upstream/registries.ts';

const target = (repo: string): Target => ({ upstream: { name: 'up.test', url: 'http://up.test', libraryPrefix: false }, repo });
const noLocalTags = { listTags: () => [] } as unknown as Metadata;

function answer(body: Buffer | string, headers: Record<string, string> = {}, status = 200): UpstreamResponse {
  const stream = Object.assign(Readable.from([Buffer.from(body)]), { dump: async () => undefined });
  return { status, headers, body: stream as unknown as UpstreamResponse['body'] };
}

/** An upstream whose repository `repo` answers page N (0-based) with page(N), and a Link to page N+1 while more(N). */
function paged(page: (repo: string, n: number) => string[] | Buffer, more: (n: number) => boolean) {
  const asked: string[] = [];
  const client: UpstreamSender = {
    send: async (_up, repo, path) => {
      asked.push(`${repo}${path}`);
      const n = Number(/page=(\d+)/.exec(path)?.[1] ?? 0);
      const p = page(repo, n);
      const body = Buffer.isBuffer(p) ? p : JSON.stringify({ name: repo, tags: p });
      return answer(body, more(n) ? { link: `</v2/${repo}/tags/list?page=${n + 1}>; rel="next"` } : {});
    },
  };
  return { client, asked };
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    assert.ok(e instanceof OciError, String(e));
    return e.status;
  }
}

test('tags: a list larger than MAX_LIST_BYTES is 502, and paging stops at the cap instead of fetching 100 pages', async () => {
  // ~1 MiB pages of distinct 100-character tags, 100 of them (the audit's repository sent 8 MiB pages).
  const pad = 'x'.repeat(90);
  const page = (n: number): string[] => Array.from({ length: 9000 }, (_, i) => `p${n}-${i}-${pad}`);
  const pageBytes = JSON.stringify({ name: 'huge', tags: page(0) }).length;
  const up = paged(
    (_r, n) => page(n),
    (n) => n < 99,
  );
  const tags = new Tags({ client: up.client, meta: noLocalTags, tagTtlMs: 30_000 });
  const err = await tags.list(target('huge'), 2, undefined).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof OciError, String(err));
  assert.equal(err.status, 502);
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(JSON.stringify(err.detail), /tag list larger than/);
  assert.ok(up.asked.length <= Math.ceil(MAX_LIST_BYTES / pageBytes) + 1, `${up.asked.length} pages of ${pageBytes} bytes fetched`);
});

test('tags: more than MAX_TAGS distinct tags is 502 (short tags fit many to a page)', async () => {
  const up = paged(
    (_r, n) => Array.from({ length: 100_000 }, (_, i) => `${n}t${i}`),
    (n) => n < 49,
  );
  const tags = new Tags({ client: up.client, meta: noLocalTags, tagTtlMs: 30_000 });
  assert.equal(await status(tags.list(target('many'), 2, undefined)), 502);
  assert.ok(up.asked.length <= Math.ceil(MAX_TAGS / 100_000) + 1, `${up.asked.length} pages fetched`);
});

test('tags: an upstream answer that is not a tag list is 502; tags null is an empty list; what is not a tag is dropped', async () => {
  const bodies: Record<string, string> = {
    notjson: '{"tags": [1,2,{"a":1}, "ok"',
    notlist: '{"name":"x","tags":{"a":1}}',
    notobject: '[1,2,3]',
    nulltags: '{"name":"x","tags":null}',
    mixed: JSON.stringify({ name: 'x', tags: ['v2', 1, null, 'bad tag', '-x', 'y'.repeat(129), 'v1', 'v1'] }),
  };
  const up = paged(
    (repo) => Buffer.from(bodies[repo]!),
    () => false,
  );
  const tags = new Tags({ client: up.client, meta: noLocalTags, tagTtlMs: 30_000 });
  for (const repo of ['notjson', 'notlist', 'notobject']) assert.equal(await status(tags.list(target(repo), undefined, undefined)), 502, repo);
  assert.deepEqual(await tags.list(target('nulltags'), undefined, undefined), { tags: [] });
  assert.deepEqual(await tags.list(target('mixed'), undefined, undefined), { tags: ['v1', 'v2'] });
});

test('tags: the cached lists are bounded in bytes: the least recently used list goes first', async () => {
  // Four lists of ~300 kB in a 1 MiB cache: the first is gone when the fourth arrives; the fourth is still there.
  const up = paged(
    (repo) => Array.from({ length: 3000 }, (_, i) => `${repo}-${i}-${'y'.repeat(80)}`),
    () => false,
  );
  const tags = new Tags({ client: up.client, meta: noLocalTags, tagTtlMs: 30_000, cacheBytes: 1 << 20 });
  for (const repo of ['a', 'b', 'c', 'd']) await tags.list(target(repo), 1, undefined);
  assert.equal(up.asked.length, 4);
  await tags.list(target('d'), 1, undefined);
  assert.equal(up.asked.length, 4, 'd is cached');
  await tags.list(target('a'), 1, undefined);
  assert.equal(up.asked.length, 5, 'a was evicted and fetched again');
});

test('tags: a fetch whose every client left stops paging; one with a client left goes on', async () => {
  const ac1 = new AbortController();
  const ac2 = new AbortController();
  // Endless small pages; both clients give up while page 3 is being asked for.
  const up = paged(
    (_r, n) => {
      if (n === 2) {
        ac1.abort();
        ac2.abort();
      }
      return [`t${n}`];
    },
    () => true,
  );
  const tags = new Tags({ client: up.client, meta: noLocalTags, tagTtlMs: 30_000 });
  const a = tags.list(target('endless'), 1, undefined, ac1.signal);
  const b = tags.list(target('endless'), 1, undefined, ac2.signal);
  await assert.rejects(a);
  await assert.rejects(b);
  assert.equal(up.asked.length, 3, 'no page asked for after the clients left');

  // A later client starts a fetch of its own (it does not join the abandoned one), and it keeps it alive while
  // another caller who joined it leaves.
  const pages = paged(
    (_r, n) => [`t${n}`],
    (n) => n < 4,
  );
  const t2 = new Tags({ client: pages.client, meta: noLocalTags, tagTtlMs: 30_000 });
  const gone = new AbortController();
  const stays = t2.list(target('five'), undefined, undefined, new AbortController().signal);
  const leaves = t2.list(target('five'), undefined, undefined, gone.signal);
  gone.abort();
  assert.deepEqual(await stays, { tags: ['t0', 't1', 't2', 't3', 't4'] });
  await leaves.catch(() => undefined);
  assert.equal(pages.asked.length, 5, 'one fetch, shared');
});

test('tags: concurrent fetches are capped per upstream (more wait their turn, none is lost)', async () => {
  let open = 0;
  let most = 0;
  const waiting: (() => void)[] = [];
  const client: UpstreamSender = {
    send: async (_up, repo) => {
      open++;
      most = Math.max(most, open);
      await new Promise<void>((resolve) => waiting.push(resolve));
      open--;
      return answer(JSON.stringify({ name: repo, tags: [repo] }));
    },
  };
  const tags = new Tags({ client, meta: noLocalTags, tagTtlMs: 30_000 });
  const all = ['r1', 'r2', 'r3', 'r4', 'r5'].map((r) => tags.list(target(r), undefined, undefined));
  // Let every fetch that may start start (a few turns of the event loop), then answer the oldest; five times.
  for (let answered = 0; answered < 5; answered++) {
    for (let turn = 0; turn < 20; turn++) await new Promise((r) => setImmediate(r));
    assert.ok(waiting.length > 0, 'a fetch is waiting for its answer');
    waiting.shift()!();
  }
  assert.deepEqual(
    await Promise.all(all),
    ['r1', 'r2', 'r3', 'r4', 'r5'].map((r) => ({ tags: [r] })),
  );
  assert.ok(most <= 2, `${most} tag-list fetches of one upstream at once`);
});
