// Scheduled warming inside a real `serve` against a real registry: fills without a client pull, then one HEAD per run.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pushOciIndex } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { sleep, waitFor } from '../helpers/tmp.ts';

describe('scheduled warming (warm: in the serve config)', () => {
  let registry: Registry;
  let sd: StevedoreProcess;
  let idx: Awaited<ReturnType<typeof pushOciIndex>>;

  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${sd.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : 0;
  };
  const runs = (result: 'ok' | 'failed') => metric(`stevedore_warm_runs_total{result="${result}"}`);

  before(async () => {
    registry = await startRegistry();
    idx = await pushOciIndex(registry.url, 'test/warm', '1');
    sd = await startStevedore({
      upstreams: [registry.url],
      config: {
        warm: [
          { name: 'every-2s', refs: ['test/warm:1'], platforms: ['linux/arm64'], every: '2s' },
          // Runs once at start (then in an hour): a failure is logged and counted, and serve keeps going.
          { name: 'missing', refs: ['test/absent:1'], platforms: 'all', every: '1h' },
        ],
      },
    });
  });
  after(async () => {
    await sd?.stop();
    await registry?.destroy();
  });

  test('serve fills the cache without a client pull; an unchanged tag then costs one HEAD and no blob GET per run', async () => {
    await waitFor('first warm runs', async () => (await runs('ok')) >= 1 && (await runs('failed')) >= 1, 15_000, 50);
    const arm64 = [idx.arm64.configDigest, ...idx.arm64.layers.map((l) => l.digest)];
    const blobGets = () =>
      registry
        .requests()
        .filter((r) => r.method === 'GET' && r.uri.includes('/blobs/'))
        .map((r) => r.uri.split('/blobs/')[1]!);
    await waitFor('registry log of the first run', () => blobGets().length >= arm64.length, 5_000, 20);
    assert.deepEqual(blobGets().sort(), [...arm64].sort(), "only the selected platform's blobs, each once");
    assert.equal(await metric('stevedore_warm_bytes_total'), idx.arm64.configBytes.length + idx.arm64.layers.reduce((a, l) => a + l.size, 0));

    // The next run comes ~2 s after the first started; its requests are the only ones until the one after.
    registry.clearRequests();
    const before = await runs('ok');
    await waitFor('the second warm run', async () => (await runs('ok')) > before, 10_000, 50);
    await sleep(300); // the registry writes its log line just after the response
    assert.deepEqual(
      registry.requests().map((r) => `${r.method} ${r.uri} ${r.status}`),
      ['HEAD /v2/test/warm/manifests/1 200'],
    );
    assert.equal(await metric('stevedore_warm_blobs_total{status="fetched"}'), arm64.length, 'nothing fetched again');
    assert.ok((await metric('stevedore_warm_blobs_total{status="cached"}')) >= arm64.length);

    // A client now pulls from the warm cache.
    registry.clearRequests();
    for (const d of arm64) {
      const res = await fetch(`${sd.url}/v2/test/warm/blobs/${d}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-stevedore-cache'), 'hit');
      await res.arrayBuffer();
    }
    const m = await fetch(`${sd.url}/v2/test/warm/manifests/${idx.arm64.manifestDigest}`, { headers: { accept: idx.arm64.manifestMediaType } });
    assert.equal(m.headers.get('x-stevedore-cache'), 'hit');
    await m.arrayBuffer();
    assert.ok(!registry.requests().some((r) => r.uri.includes('/blobs/')), 'no blob from upstream');

    const logs = sd.logs();
    assert.match(logs, /"warm":"every-2s".*"msg":"warm run finished"/);
    assert.match(logs, /"warm":"missing".*MANIFEST_UNKNOWN.*"msg":"warm run finished with failures"/);
  });
});
