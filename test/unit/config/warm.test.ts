// Unit tests of src/config/warm.ts: durations, times of day, and the warm: section of the config.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostPlatform, parseDuration, parseTimeOfDay, warmSchema } from '../../../src/config/warm.ts';

test('durations and times of day parse; malformed ones do not', () => {
  assert.equal(parseDuration('6h'), 6 * 3600_000);
  assert.equal(parseDuration('30m'), 30 * 60_000);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1h30m'), 90 * 60_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  for (const bad of ['', '6', 'h', '1.5h', '-2s', '2 s', '2x']) assert.equal(parseDuration(bad), undefined, bad);
  assert.deepEqual(parseTimeOfDay('02:00'), { hour: 2, minute: 0 });
  assert.deepEqual(parseTimeOfDay('7:05'), { hour: 7, minute: 5 });
  for (const bad of ['24:00', '02:60', '2', '02:00:00', 'noon']) assert.equal(parseTimeOfDay(bad), undefined, bad);
});

test('the warm: section: selection, schedule, and one clear error per mistake', () => {
  const ok = warmSchema.parse([
    { refs: ['alpine:3.20'], platforms: ['linux/arm64/v8'], every: '6h' },
    { name: 'nightly', refs: [`ghcr.io/org/app@sha256:${'a'.repeat(64)}`], platforms: 'all', compression: 'zstd', at: ['02:00', '14:30'] },
    { refs: ['localhost:5000/app'], every: '2s' },
  ]);
  assert.deepEqual(ok[0], {
    name: 'warm[0]',
    refs: ['alpine:3.20'],
    concurrency: 4,
    schedule: { kind: 'every', ms: 6 * 3600_000 },
    selection: { compression: 'gzip', platforms: [{ os: 'linux', architecture: 'arm64', variant: 'v8' }] },
  });
  assert.deepEqual(ok[1]!.selection, { compression: 'zstd' }, '"all": no platform filter');
  assert.deepEqual(ok[1]!.schedule, {
    kind: 'at',
    times: [
      { hour: 2, minute: 0 },
      { hour: 14, minute: 30 },
    ],
  });
  assert.deepEqual(ok[2]!.selection.platforms, [hostPlatform()], "no platforms: this host's");
  assert.deepEqual(warmSchema.parse(undefined), []);
  const error = (v: unknown): string => {
    const r = warmSchema.safeParse(v);
    assert.equal(r.success, false);
    return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };
  assert.match(error([{ refs: ['a:1'], every: '6h', at: '02:00' }]), /exactly one of every/);
  assert.match(error([{ refs: ['a:1'] }]), /exactly one of every/);
  assert.match(error([{ refs: ['a:1'], every: '500ms' }]), /^0\.every: .*at least 1s/);
  assert.match(error([{ refs: ['a:1'], at: '25:00' }]), /HH:MM/);
  assert.match(error([{ refs: ['a:1'], platforms: ['linux'], every: '1h' }]), /os\/arch/);
  assert.match(error([{ refs: ['Not A Ref!'], every: '1h' }]), /^0\.refs\.0: expected an image reference/);
  assert.match(error([{ refs: [], every: '1h' }]), /^0\.refs/);
  assert.match(error([{ refs: ['a:1'], every: '1h', when: 'daily' }]), /when/);
});
