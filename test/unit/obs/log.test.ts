// Unit tests of src/obs/log.ts: JSON lines for collectors, pretty one-line text for people (pino-pretty), auto picks by terminal, secrets redacted in both.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { createLogger, type LogFormat } from '../../../src/obs/log.ts';

/** Logs two lines (a request and one with a secret) and returns what reached the destination. */
function capture(format: LogFormat, tty = false): string[] {
  const out = new PassThrough();
  Object.assign(out, { isTTY: tty });
  const lines: string[] = [];
  out.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const log = createLogger('info', out, format);
  log
    .child({ reqId: 'r1' })
    .info({ method: 'GET', path: '/v2/library/alpine/manifests/3.20', status: 200, ms: 12, outcome: 'hit', route: 'manifests' }, 'request');
  log.warn({ upstream: 'ghcr.io', password: 'hunter2' }, 'upstream login failed');
  log.flush();
  return lines;
}

describe('logger formats', () => {
  test('json: one JSON object per line with numeric level and epoch time', () => {
    const lines = capture('json');
    assert.equal(lines.length, 2);
    const req = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(req.level, 30);
    assert.equal(req.status, 200);
    assert.equal(typeof req.time, 'number');
    assert.equal((JSON.parse(lines[1]!) as { password: string }).password, '[redacted]');
  });

  test('pretty: a readable line with time, level and the request summary; secrets still redacted', () => {
    const lines = capture('pretty');
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(
      lines[0]!,
      /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: request GET \/v2\/library\/alpine\/manifests\/3\.20 -> 200 hit 12ms \{"route":"manifests"\}$/,
    );
    assert.match(lines[1]!, /^\[.*\] WARN: upstream login failed \{"upstream":"ghcr\.io","password":"\[redacted\]"\}$/);
    assert.ok(!lines.join('\n').includes('hunter2'));
  });

  test('auto: pretty on a terminal, JSON otherwise', () => {
    // A terminal also gets colours: compare without the escape sequences.
    const onTty = stripVTControlCharacters(capture('auto', true)[0]!);
    assert.match(onTty, /INFO: request GET /);
    assert.doesNotThrow(() => JSON.parse(capture('auto', false)[0]!));
  });
});
