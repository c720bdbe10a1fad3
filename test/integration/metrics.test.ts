// /metrics, /readyz and /healthz after a cold and a warm skopeo pull of a known image: byte and request counters are exact.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushMultiLayer, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, waitFor, type TempDir } from '../helpers/tmp.ts';

/** Parses the Prometheus text format into `name{labels}` -> value (labels as printed). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('metrics and readiness', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let img: PushedImage;
  let blobBytes: number;
  let blobCount: number;
  const scrape = async () => {
    const res = await fetch(`${sd.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers.get('content-type')), /^text\/plain/);
    return parseMetrics(await res.text());
  };
  const v = (m: Map<string, number>, key: string) => m.get(key) ?? 0;
  /** Counters are updated when a response's socket closes, just after skopeo has its bytes: wait (bounded) for it. */
  const scrapeWhen = (what: string, ok: (m: Map<string, number>) => boolean) =>
    waitFor(
      what,
      async () => {
        const m = await scrape();
        return ok(m) ? m : undefined;
      },
      5_000,
      50,
    );

  before(async () => {
    tmp = makeTempDir();
    reg = await startRegistry();
    img = await pushMultiLayer(reg.url, 'test/metrics', 'v1', 4);
    blobBytes = img.configBytes.length + img.layers.reduce((n, l) => n + l.size, 0);
    blobCount = 1 + img.layers.length;
    sd = await startStevedore({ upstreams: [reg.url], tagTtl: 300 });
  });
  after(async () => {
    await Promise.allSettled([sd?.stop(), reg?.destroy()]);
    await tmp?.cleanup();
  });

  test("/metrics has prom-client's process and runtime metrics: RSS, open fds, event-loop lag", async () => {
    const m = await scrape();
    for (const name of ['process_resident_memory_bytes', 'process_open_fds', 'nodejs_heap_size_used_bytes'])
      assert.ok(v(m, name) > 0, `${name} = ${m.get(name)}`);
    // The lag itself may round to 0 on an idle loop; the sampled histogram's p99 never does.
    assert.ok(m.has('nodejs_eventloop_lag_seconds'));
    assert.ok(v(m, 'nodejs_eventloop_lag_p99_seconds') > 0);
  });

  test('/healthz is 200; /readyz is 200 with an empty store before any pull', async () => {
    const h = await fetch(`${sd.url}/healthz`);
    assert.deepEqual([h.status, await h.json()], [200, { status: 'ok' }]);
    const r = await fetch(`${sd.url}/readyz`);
    const body = (await r.json()) as { status: string; store: { bytes: number; objects: number }; cacheWritable: boolean; offline: boolean };
    assert.equal(r.status, 200);
    assert.deepEqual([body.status, body.store, body.cacheWritable, body.offline], ['ready', { objects: 0, bytes: 0 }, true, false]);
  });

  test("a cold pull: upstream blob bytes and served miss bytes both equal the image's blob bytes; every blob a miss", async () => {
    const r = await copyToOciDir(`docker://${sd.host}/test/metrics:v1`, path.join(tmp.path, 'cold'));
    assert.equal(r.code, 0, r.stderr);
    // Clients finish at verification; the commit follows: wait until the fills have settled too.
    const m = await scrapeWhen(
      'cold pull counted and committed',
      (x) => v(x, 'stevedore_cache_requests_total{kind="blob",outcome="miss"}') >= blobCount && v(x, 'stevedore_fills_in_flight') === 0,
    );
    assert.equal(v(m, 'stevedore_upstream_bytes_total{kind="blob"}'), blobBytes);
    assert.equal(v(m, 'stevedore_served_bytes_total{kind="blob",outcome="miss"}'), blobBytes);
    assert.equal(v(m, 'stevedore_served_bytes_total{kind="blob",outcome="hit"}'), 0);
    assert.equal(v(m, 'stevedore_cache_requests_total{kind="blob",outcome="miss"}'), blobCount);
    assert.equal(v(m, 'stevedore_cache_requests_total{kind="blob",outcome="hit"}'), 0);
    assert.equal(v(m, 'stevedore_upstream_bytes_total{kind="manifest"}'), img.manifestBytes.length);
    assert.ok(v(m, 'stevedore_cache_requests_total{kind="manifest",outcome="miss"}') >= 1);
    assert.equal(v(m, 'stevedore_store_bytes'), blobBytes);
    assert.equal(v(m, 'stevedore_store_objects'), blobCount);
    assert.equal(v(m, 'stevedore_fills_in_flight'), 0);
  });

  test('a warm pull: served hit bytes equal the blob bytes, nothing more from upstream; /readyz reports the store', async () => {
    const before = await scrape();
    const r = await copyToOciDir(`docker://${sd.host}/test/metrics:v1`, path.join(tmp.path, 'warm'));
    assert.equal(r.code, 0, r.stderr);
    const m = await scrapeWhen('warm pull counted', (x) => v(x, 'stevedore_cache_requests_total{kind="blob",outcome="hit"}') >= blobCount);
    assert.equal(v(m, 'stevedore_served_bytes_total{kind="blob",outcome="hit"}'), blobBytes);
    assert.equal(v(m, 'stevedore_cache_requests_total{kind="blob",outcome="hit"}'), blobCount);
    assert.equal(v(m, 'stevedore_served_bytes_total{kind="blob",outcome="miss"}'), blobBytes, 'unchanged since the cold pull');
    assert.equal(v(m, 'stevedore_cache_requests_total{kind="blob",outcome="miss"}'), blobCount);
    assert.equal(v(m, 'stevedore_upstream_bytes_total{kind="blob"}'), blobBytes, 'no upstream blob bytes for a warm pull');
    assert.equal(v(m, 'stevedore_upstream_bytes_total{kind="manifest"}'), v(before, 'stevedore_upstream_bytes_total{kind="manifest"}'));
    assert.ok(
      v(m, 'stevedore_cache_requests_total{kind="manifest",outcome="hit"}') > v(before, 'stevedore_cache_requests_total{kind="manifest",outcome="hit"}'),
    );
    assert.equal(v(m, 'stevedore_http_requests_total{route="blobs",method="GET",status="200"}'), 2 * blobCount);

    const res = await fetch(`${sd.url}/readyz`);
    const body = (await res.json()) as { status: string; store: { bytes: number; objects: number } };
    assert.equal(res.status, 200);
    assert.deepEqual(body.store, { objects: blobCount, bytes: blobBytes });
  });
});
