// Unit tests of src/cli/run.ts (and main.ts): operational failures are one line on stderr, no stack trace, with the
// exit code systemd's RestartPreventExitStatus=2 relies on (2 for a config the operator must fix).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { BlobStore } from '../../../src/store/blob-store.ts';
import { Metadata } from '../../../src/store/metadata.ts';
import { freePort, makeTempDir, runCommand, type TempDir } from '../../helpers/tmp.ts';

const MAIN = path.resolve(import.meta.dirname, '../../../dist/main.js');

describe('CLI failures: one line, the right exit code', () => {
  const dirs: TempDir[] = [];
  const tmp = (): string => {
    const d = makeTempDir('stevedore-cli-');
    dirs.push(d);
    return d.path;
  };
  after(async () => {
    for (const d of dirs) await d.cleanup();
  });
  const cli = (...args: string[]) => runCommand(process.execPath, [MAIN, ...args], { timeoutMs: 30_000 });
  const oneLine = (stderr: string): string => {
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    return lines[0]!;
  };

  test('a YAML syntax error in the config: one line naming the file and position, exit 2', async () => {
    const dir = tmp();
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'listen: [oops\n  foo: : bar\n');
    for (const cmd of ['serve', 'check-config']) {
      const r = await cli(cmd, '--config', file, '--data', path.join(dir, 'data'));
      assert.equal(r.code, 2, `${cmd}: ${r.stderr}`);
      assert.match(oneLine(r.stderr), /^stevedore: invalid config: .*bad\.yaml: .*line 1, column \d+$/);
    }
  });

  test('the listen address in use: one line, exit 1 (systemd may retry)', async () => {
    const port = await freePort();
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(port, '127.0.0.1', () => r()));
    try {
      const line = `stevedore: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`;
      const r = await cli('serve', '--workers', '1', '--listen', `127.0.0.1:${port}`, '--data', path.join(tmp(), 'data'));
      assert.equal(r.code, 1, r.stderr);
      assert.equal(oneLine(r.stderr), line);
      // Under --workers 2 each worker that started says it once, and the cluster exits instead of restarting them.
      const c = await cli('serve', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--data', path.join(tmp(), 'data'));
      assert.equal(c.code, 1, c.stderr);
      const lines = c.stderr.trim().split('\n');
      assert.ok(lines.length >= 1 && lines.every((l) => l === line), c.stderr);
    } finally {
      busy.close();
    }
  });

  test('pin of an image that is not cached: one line with the reason and the command that fetches it, exit 1', async () => {
    const data = path.join(tmp(), 'data');
    new Metadata(new BlobStore(data).paths.db).close(); // an existing, empty data dir
    const r = await cli('pin', 'docker.io/library/nothing-here:1', '--data', data);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      oneLine(r.stderr),
      'stevedore: docker.io/library/nothing-here:1 is not cached (tag unknown here); fetch and pin it with: stevedore prefetch --pin docker.io/library/nothing-here:1',
    );
  });
});
