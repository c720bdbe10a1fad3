// Unit tests of src/http/ui/sections.tsx (and page.tsx): every card renders from StatusData, numbers formatted,
// progress bars for fills, and text from clients or upstreams (repository names, errors) escaped, never markup.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { StatusData } from '../../../../src/http/ui/data.ts';
import { Page } from '../../../../src/http/ui/page.tsx';
import { SECTIONS } from '../../../../src/http/ui/sections.tsx';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const EVIL = '<img src=x onerror=alert(1)>';

const data: StatusData = {
  version: '9.9.9',
  now: NOW,
  startedAt: NOW - 3_600_000,
  offline: false,
  storage: { used: 750_000_000, blobs: 12, manifests: 4, maxSize: 1_000_000_000, diskFree: 5e10, diskSize: 1e11 },
  traffic: { served: 3_000_000_000, fetched: 1_000_000_000, requests: 200, hits: 150 },
  history: [
    { t: NOW - 120_000, served: 2e9, fetched: 1e9, requests: 100, hits: 50 },
    { t: NOW - 60_000, served: 0, fetched: 0, requests: 0, hits: 0 },
    { t: NOW, served: 1e9, fetched: 0, requests: 100, hits: 100 },
  ],
  upstreams: [{ name: 'ghcr.io', url: 'https://ghcr.io', open: true, failures: 5, lastError: `5xx ${EVIL}`, lastErrorAt: NOW - 30_000 }],
  fills: [{ digest: `sha256:${'a'.repeat(64)}`, label: 'ghcr.io/org/app', received: 25_000_000, size: 100_000_000 }],
  topBySize: [{ name: `docker.io/library/${EVIL}`, bytes: 500_000_000, blobs: 3 }],
  topByPulls: [{ name: 'docker.io/library/alpine', pulls: 42 }],
  foreign: [{ digest: `sha256:${'b'.repeat(64)}`, status: 'denied', size: 1000, lastError: 'no foreign.rules entry matches this URL' }],
  pins: [{ name: 'docker.io/library/alpine:3.20', digest: `sha256:${'c'.repeat(64)}`, createdAt: NOW - 7_200_000 }],
  evictions: [{ at: NOW - 60_000, freedBytes: 2_000_000, short: false, images: [{ image: 'docker.io/library/old:1', bytes: 2_000_000 }] }],
  warm: [{ entry: 'nightly', startedAt: NOW - 600_000, ok: false, seconds: 12.5, fetchedBytes: 3_000_000, cachedBlobs: 7, failed: 1 }],
};

const render = async (id: keyof typeof SECTIONS): Promise<string> => {
  // Components are functions of their props: called directly, no JSX needed in the test.
  return String(await SECTIONS[id]({ d: data }).toString());
};

describe('status page cards', () => {
  test('numbers: hit ratio, served, fetched, saved; storage against the budget', async () => {
    const traffic = await render('traffic');
    assert.match(traffic, /data-testid="hit-ratio">75\.0 %</);
    assert.match(traffic, /data-testid="served">3\.0 GB</);
    assert.match(traffic, /data-testid="fetched">1\.0 GB</);
    assert.match(traffic, /data-testid="saved">2\.0 GB</);
    assert.equal((traffic.match(/<rect /g) ?? []).length, 2, 'one bar per minute that saved bytes');
    const storage = await render('storage');
    assert.match(storage, />75 %</);
    assert.match(storage, /of 1\.0 GB/);
  });

  test('fills as progress bars; upstream circuit and error; foreign, pins, evictions, warm runs', async () => {
    assert.match(await render('fills'), /ghcr\.io\/org\/app sha256:aaaaaaaaaaaa…<\/span><progress max="100000000" value="25000000"/);
    const up = await render('upstreams');
    assert.match(up, /class="badge bad">open</);
    assert.match(up, /5 failures/);
    assert.match(await render('foreign'), /denied.*no foreign\.rules entry matches this URL/s);
    assert.match(await render('pins'), /docker\.io\/library\/alpine:3\.20.*2\.0 h ago/s);
    assert.match(await render('evictions'), /docker\.io\/library\/old:1 \(2\.0 MB\)/);
    assert.match(await render('warm'), /nightly.*1 failed.*3\.0 MB fetched, 7 cached, 12\.5 s/s);
    assert.match(await render('top-pulls'), /docker\.io\/library\/alpine.*42/s);
  });

  test('names and errors from clients and upstreams are escaped', async () => {
    const page = String(await Page({ d: data, nonce: 'n0nce' }).toString());
    assert.ok(!page.includes(EVIL), 'raw markup from data never reaches the page');
    assert.ok(page.includes('&lt;img src=x onerror=alert(1)&gt;'));
    assert.equal((page.match(/<script/g) ?? []).length, 1, 'only the page script');
    assert.match(page, /<script nonce="n0nce">/);
  });
});
