// Unit tests of src/config/print.ts: the printed YAML loads back to the same config (warm schedules, upstreams, defaults), secrets left out.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';
import { configToYaml } from '../../../src/config/print.ts';

const file = (text: string): string => {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'stevedore-print-')), 'config.yaml');
  writeFileSync(f, text);
  return f;
};

describe('configToYaml', () => {
  test('round trip: defaults, flags, a custom upstream, warm entries (every and at) load back equal', () => {
    const env = { STEVEDORE_UPSTREAM_GHCR_IO_TOKEN: 'tok-secret' };
    const want = loadConfig(
      {
        config: file(
          'warm:\n  - refs: [alpine:3.20]\n    every: 90m\n  - refs: [ghcr.io/a/b:1]\n    platforms: all\n    at: "03:05"\n' +
            'upstreams:\n  quay.io:\n    endpoints:\n      - { url: "http://site-cache:5000", mirror: true }\n      - { url: "https://quay.io", username: robot }\n',
        ),
        upstream: ['http://127.0.0.1:5000', 'mirror.example=https://mirror.example/v'],
        maxSize: '10GiB',
        offline: true,
      },
      env,
    );
    const text = configToYaml(want);
    assert.ok(!text.includes('tok-secret'));
    assert.match(text, /^# Secrets not printed: upstreams\.ghcr\.io\.token\.$/m);
    assert.ok(!/^(host|port):/m.test(text), 'derived keys are not config keys');
    assert.deepEqual(loadConfig({ config: file(text) }, env), want);
  });
});
