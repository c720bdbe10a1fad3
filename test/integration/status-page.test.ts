// The status page in a real headless Chromium (playwright-core): loads without console errors, and after a real
// skopeo pull through stevedore it shows that pull (bytes served, the repository at the top); admin token guards it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { bytes } from '../../src/http/ui/format.ts';
import { pushBigLayer, pushMultiLayer, type PushedImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, waitFor, type TempDir } from '../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');
const ROOT = path.resolve(import.meta.dirname, '../..');
const TOKEN = 'status-page-token-0123456789';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface UiData {
  status: { traffic: { served: number; fetched: number; requests: number; hits: number }; topByPulls: { name: string; pulls: number }[] };
  sections: Record<string, string>;
}

describe('status page in headless Chromium', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let tmp: TempDir;
  let browser: Browser;
  let app: PushedImage;
  let big: PushedImage;

  before(async () => {
    tmp = makeTempDir('stevedore-ui-');
    reg = await startRegistry();
    app = await pushMultiLayer(reg.url, 'team/app', '1', 3);
    big = await pushBigLayer(reg.url, 'team/base', '2', 6);
    sd = await startStevedore({ upstreams: [reg.url], extraArgs: ['--max-size', '50MB'], env: { STEVEDORE_ADMIN_TOKEN: TOKEN } });
    // chromium.launch gives the browser a fresh temporary user-data-dir: nothing of the machine's browser state is used.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
    await sd?.stop();
    await reg?.destroy();
    await tmp?.cleanup();
  });

  /** A page logged in with the admin token (Basic auth, as a person would type it), collecting console errors. */
  async function open(): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: TOKEN }, viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`${r.url()}: ${r.failure()?.errorText}`));
    return { page, errors };
  }

  const data = async (): Promise<UiData> => {
    const res = await fetch(`${sd.url}/-/ui/data`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    return (await res.json()) as UiData;
  };

  test('without the admin token the page and its data are 401 with a Basic challenge', async () => {
    for (const p of ['/-/ui/', '/-/ui/data']) {
      const res = await fetch(`${sd.url}${p}`);
      assert.equal(res.status, 401, p);
      assert.match(String(res.headers.get('www-authenticate')), /^Basic realm="stevedore status"/);
      const wrong = await fetch(`${sd.url}${p}`, { headers: { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` } });
      assert.equal(wrong.status, 401, p);
    }
  });

  test('loads without console errors, then shows a real pull: bytes served and the repository on top', async () => {
    const { page, errors } = await open();
    const res = await page.goto(`${sd.url}/-/ui/`);
    assert.equal(res?.status(), 200);
    assert.equal(await page.title(), 'stevedore status');
    assert.equal(await page.getByTestId('served').textContent(), '0 B');
    assert.match((await page.locator('#top-pulls').textContent()) ?? '', /no pulls since start/);

    const pull = await copyToOciDir(`docker://${sd.host}/team/app:1`, path.join(tmp.path, 'app'));
    assert.equal(pull.code, 0, pull.stderr);
    const blobBytes = app.configBytes.length + app.layers.reduce((n, l) => n + l.size, 0);
    // The live refresh (every 5 s) brings the pull in without reloading the page.
    const shown = (sel: string) => page.locator(sel).textContent();
    await waitFor('the pull on the page', async () => (await shown('#top-pulls'))?.includes('team/app'), 20_000, 250);
    // Byte counters move when each response's socket closes, just after skopeo has its bytes.
    const d = await waitFor('the counters', async () => {
      const x = await data();
      return x.status.traffic.served >= blobBytes + app.manifestBytes.length ? x : undefined;
    });
    assert.ok(d.status.traffic.fetched >= blobBytes, `fetched ${d.status.traffic.fetched}`);
    assert.deepEqual(d.status.topByPulls[0], { name: `${reg.host}/team/app`, pulls: 1 });
    await waitFor('the served bytes on the page', async () => (await shown('[data-testid="served"]')) === bytes(d.status.traffic.served), 20_000, 250);
    assert.match((await page.getByTestId('top-pulls').textContent()) ?? '', new RegExp(`${reg.host}/team/app\\s*1`));
    assert.match((await page.getByTestId('top-size').textContent()) ?? '', new RegExp(`${reg.host}/team/app`));
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  test('a second pull of the same image is all hits: the page shows the hit ratio and bytes saved; screenshot for the README', async () => {
    for (const [ref, dir] of [
      ['team/app:1', 'app2'],
      ['team/base:2', 'base'],
      ['team/base:2', 'base2'],
    ] as const)
      assert.equal((await copyToOciDir(`docker://${sd.host}/${ref}`, path.join(tmp.path, dir))).code, 0);
    const pin = await runCommand(process.execPath, [MAIN, 'pin', 'team/base:2', '--data', sd.dataDir, '--upstream', reg.url], { timeoutMs: 30_000 });
    assert.equal(pin.code, 0, pin.stderr);
    const { page, errors } = await open();
    await page.goto(`${sd.url}/-/ui/`);
    const d = await data();
    const t = d.status.traffic;
    assert.ok(t.hits > 0 && t.served > t.fetched + big.layers[0]!.size - 1, JSON.stringify(t));
    assert.equal(await page.getByTestId('saved').textContent(), bytes(t.served - t.fetched));
    assert.match((await page.locator('#pins').textContent()) ?? '', new RegExp(`${reg.host}/team/base:2`));
    assert.equal((await page.locator('#traffic svg rect.bar').count()) > 0, true, 'the plot has a bar for this minute');
    if (process.env.UPDATE_SCREENSHOT === '1') await page.screenshot({ path: path.join(ROOT, 'docs/status-page.png'), fullPage: true });
    assert.deepEqual(errors, []);
    await page.context().close();
  });
});
