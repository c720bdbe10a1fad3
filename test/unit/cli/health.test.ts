// Unit tests of src/cli/health.ts: `stevedore healthcheck` (the image's HEALTHCHECK) follows the configured listen port, from env or config file.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { probeUrl } from '../../../src/cli/health.ts';
import { startInProcess } from '../../helpers/stevedore.ts';
import { freePort, makeTempDir, runCommand } from '../../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../../dist/main.js');
const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('STEVEDORE_')));
const healthcheck = (env: Record<string, string>) =>
  runCommand(process.execPath, [MAIN, 'healthcheck'], { timeoutMs: 30_000, env: { ...base, ...env }, cwd: makeTempDir('stevedore-hc-').path });

describe('stevedore healthcheck', () => {
  test('probes /healthz on the port of STEVEDORE_LISTEN or of the STEVEDORE_CONFIG file; fails with one line elsewhere', async () => {
    const sd = await startInProcess({});
    try {
      const port = new URL(sd.url).port;
      const ok = await healthcheck({ STEVEDORE_LISTEN: `0.0.0.0:${port}` });
      assert.equal(ok.code, 0, ok.stderr);
      const file = path.join(makeTempDir('stevedore-hc-cfg-').path, 'config.yaml');
      writeFileSync(file, `listen: 127.0.0.1:${port}\n`);
      assert.equal((await healthcheck({ STEVEDORE_CONFIG: file })).code, 0);
      const other = await freePort();
      const down = await healthcheck({ STEVEDORE_LISTEN: `0.0.0.0:${other}` });
      assert.equal(down.code, 1);
      assert.match(down.stderr, new RegExp(`^stevedore: healthcheck: http://127\\.0\\.0\\.1:${other}/healthz: .+\\n$`));
    } finally {
      await sd.stop();
    }
  });

  test('a wildcard listen address is probed on loopback', () => {
    assert.equal(probeUrl('0.0.0.0', 5000), 'http://127.0.0.1:5000/healthz');
    assert.equal(probeUrl('::', 5000), 'http://[::1]:5000/healthz');
    assert.equal(probeUrl('10.1.2.3', 80), 'http://10.1.2.3:80/healthz');
  });
});
