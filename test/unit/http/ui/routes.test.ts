// Unit tests of src/http/ui/routes.tsx on the real app (buildApp): page and data answer, and their requests are logged at debug, not in the info access log.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { buildApp } from '../../../../src/app.ts';
import { loadConfig } from '../../../../src/config/load.ts';
import { makeTempDir } from '../../../helpers/tmp.ts';

describe('status page routes', () => {
  test('/-/ui/ is HTML with a nonce CSP, /-/ui/data JSON with every card; neither fills the info access log', async () => {
    const lines: { level: number; msg: string; path?: string }[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as { level: number; msg: string; path?: string }) });
    const s = buildApp(loadConfig({ data: makeTempDir('stevedore-ui-routes-').path }, {}), log);
    try {
      const page = await s.app.request('/-/ui/');
      assert.equal(page.status, 200);
      assert.match(String(page.headers.get('content-type')), /^text\/html/);
      const nonce = /script-src 'nonce-([^']+)'/.exec(String(page.headers.get('content-security-policy')))?.[1];
      assert.ok(nonce && (await page.text()).includes(`<script nonce="${nonce}">`));
      const data = (await (await s.app.request('/-/ui/data')).json()) as { status: { version: string }; sections: Record<string, string> };
      assert.deepEqual(Object.keys(data.sections).sort(), [
        'evictions',
        'fills',
        'foreign',
        'pins',
        'storage',
        'top-pulls',
        'top-size',
        'traffic',
        'upstreams',
        'warm',
      ]);
      assert.equal((await s.app.request('/-/ui')).status, 301);
      await s.app.request('/healthz');
      assert.deepEqual(
        lines.filter((l) => l.msg === 'request').map((l) => l.path),
        ['/healthz'],
      );
    } finally {
      await s.close();
    }
  });
});
