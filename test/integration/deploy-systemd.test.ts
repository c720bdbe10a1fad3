// deploy/systemd/stevedore.service as shipped: runs the server hardened and outlives its shutdown grace.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DEPLOY, mutate, worstShutdownSeconds } from '../helpers/deploy.ts';

function parseUnit(text: string): Map<string, [string, string][]> {
  const sections = new Map<string, [string, string][]>();
  let current: [string, string][] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      current = [];
      sections.set(s[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    assert.ok(current && eq > 0, `unit line outside a section or without "=": ${line}`);
    current.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return sections;
}

function unitProblems(text: string, graceSeconds: number): string[] {
  const service = parseUnit(text).get('Service') ?? [];
  const all = (k: string): string[] => service.filter(([key]) => key === k).map(([, v]) => v);
  const one = (k: string): string | undefined => all(k).at(-1);
  const problems: string[] = [];
  const exec = (one('ExecStart') ?? '').split(/\s+/);
  if (!(exec[0]?.startsWith('/') && exec[0].endsWith('/node'))) problems.push(`ExecStart does not run an absolute node: ${exec[0]}`);
  if (!exec[1]?.endsWith('/dist/main.js')) problems.push(`ExecStart does not run dist/main.js: ${exec[1]}`);
  if (exec[2] !== 'serve') problems.push(`ExecStart does not run "serve": ${exec[2]}`);
  const cfg = exec.indexOf('--config');
  if (cfg < 0 || !exec[cfg + 1]?.startsWith('/etc/stevedore/')) problems.push('ExecStart has no --config /etc/stevedore/...');
  const mdwe = one('MemoryDenyWriteExecute');
  if (mdwe !== undefined && mdwe !== 'no') problems.push('MemoryDenyWriteExecute is set: V8 JIT needs W+X memory');
  const stop = Number((one('TimeoutStopSec') ?? '').replace(/s$/, ''));
  if (!(stop > graceSeconds)) problems.push(`TimeoutStopSec ${one('TimeoutStopSec')} is not above the ${graceSeconds} s shutdown`);
  const expect: Record<string, string> = {
    Restart: 'on-failure',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    StateDirectory: 'stevedore',
    CapabilityBoundingSet: '',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    EnvironmentFile: '-/etc/stevedore/env',
  };
  for (const [k, v] of Object.entries(expect)) if (one(k) !== v) problems.push(`${k}=${one(k) ?? '(unset)'}, expected ${k}=${v}`);
  if (!all('SystemCallFilter').includes('@system-service')) problems.push('SystemCallFilter=@system-service missing');
  if (!(Number(one('LimitNOFILE')) >= 65536)) problems.push(`LimitNOFILE=${one('LimitNOFILE')} is low`);
  if (one('DynamicUser') !== 'yes' && !one('User')) problems.push('neither DynamicUser=yes nor User=');
  if (one('User') === 'root') problems.push('runs as root');
  return problems;
}

describe('deploy/systemd/stevedore.service', () => {
  const file = path.join(DEPLOY, 'systemd/stevedore.service');
  const text = readFileSync(file, 'utf8');
  const grace = worstShutdownSeconds();

  test('runs node dist/main.js serve --config, hardened, and outlives the shutdown grace', () => {
    assert.deepEqual(unitProblems(text, grace), []);
  });

  test('the check can fail', () => {
    assert.notDeepEqual(unitProblems(mutate(text, 'dist/main.js serve', 'dist/main.js check-config'), grace), []);
    assert.notDeepEqual(unitProblems(mutate(text, '/dist/main.js', '/dist/cli.js'), grace), []);
    assert.notDeepEqual(unitProblems(mutate(text, 'SystemCallErrorNumber=EPERM', 'SystemCallErrorNumber=EPERM\nMemoryDenyWriteExecute=yes'), grace), []);
    assert.notDeepEqual(unitProblems(mutate(text, /^TimeoutStopSec=.*$/m, 'TimeoutStopSec=10'), grace), []);
    assert.notDeepEqual(unitProblems(mutate(text, /^CapabilityBoundingSet=$/m, 'CapabilityBoundingSet=CAP_SYS_ADMIN'), grace), []);
  });

  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();
  const node = /^ExecStart=(\S+)/m.exec(text)?.[1] ?? '';
  test('systemd-analyze verify accepts it', { skip: !analyze ? 'no systemd-analyze' : !existsSync(node) ? `no ${node} on this machine` : false }, () => {
    const r = spawnSync(analyze, ['verify', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
  });
});
