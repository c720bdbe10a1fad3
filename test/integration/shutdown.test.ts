// SIGTERM: stop accepting, let the response and the fill in flight finish, close SQLite, log a last line, exit 0.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, waitFor, type TempDir } from '../helpers/tmp.ts';
import { sha256 } from '../helpers/http.ts';

describe('graceful shutdown', () => {
  let fake: FakeUpstream;
  let sd: StevedoreProcess | undefined;
  let data: TempDir;
  const blob = randomBytes(2 << 20);
  let digest: string;

  before(async () => {
    fake = await startFakeUpstream();
    digest = fake.addBlob('app/s', blob);
    data = makeTempDir('stevedore-shutdown-');
  });
  after(async () => {
    await sd?.stop();
    await fake?.stop();
    await data?.cleanup();
  });

  test('a download in flight at SIGTERM completes with the right bytes, the blob is committed, exit code 0', async () => {
    sd = await startStevedore({ upstreams: [fake.url], dataDir: data.path });
    // ~2 MiB at 64 KiB per 50 ms: about 1.6 s of download, so the signal lands mid-fill.
    fake.setFault(digest, { kind: 'slow-body', bytesPerTick: 64 << 10, tickMs: 50 });
    const res = await request(`${sd.url}/v2/app/s/blobs/${digest}`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(res.statusCode, 200);
    const chunks: Buffer[] = [];
    let received = 0;
    const reading = (async () => {
      for await (const c of res.body) {
        chunks.push(c as Buffer);
        received += (c as Buffer).length;
      }
    })();
    await waitFor('the first bytes', () => received > 0 || undefined, 10_000, 10);
    const exited = sd.signal('SIGTERM');
    // Stops accepting: a new connection is refused while the old response is still streaming.
    await waitFor(
      'the listener to close',
      async () => {
        try {
          await request(`${sd!.url}/healthz`, { headersTimeout: 500 }).then((r) => r.body.dump());
          return undefined;
        } catch {
          return true;
        }
      },
      10_000,
      20,
    );
    assert.ok(received < blob.length, 'the download was still running when the listener closed');
    await reading;
    assert.equal(sha256(Buffer.concat(chunks)), digest);
    assert.equal(await exited, 0);
    // The log ends with one line saying the process stopped, and how (JSON: the output is not a terminal).
    const last = JSON.parse(sd.logs().trim().split('\n').at(-1)!) as { msg: string; signal: string; how: string };
    assert.deepEqual([last.msg, last.signal, last.how], ['stevedore stopped', 'SIGTERM', 'clean']);
    // Restarted on the same data dir, the blob is a hit: the fill committed before the process exited.
    fake.clearFault(digest);
    fake.reset();
    sd = await startStevedore({ upstreams: [fake.url], dataDir: data.path });
    const again = await request(`${sd.url}/v2/app/s/blobs/${digest}`);
    assert.equal(again.headers['x-stevedore-cache'], 'hit');
    assert.equal(sha256(Buffer.from(await again.body.arrayBuffer())), digest);
    assert.equal(fake.count('GET', digest), 0);
  });
});
