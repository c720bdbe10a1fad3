// The Dockerfile as shipped (no engine here to build it: static checks of what it promises).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { mutate, ROOT } from '../helpers/deploy.ts';

interface Instruction {
  cmd: string;
  args: string;
}

function dockerInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    out.push({ cmd: m[1]!.toUpperCase(), args: m[2]! });
  }
  return out;
}

const BUILD_TOOLS = /\b(python3?|make|g\+\+|gcc|clang|build-essential|node-gyp)\b/;

function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  const stages: Instruction[][] = [];
  for (const i of dockerInstructions(text)) {
    if (i.cmd === 'FROM') stages.push([]);
    stages.at(-1)?.push(i);
  }
  if (stages.length < 2) return ['not a multi-stage build'];
  if (!/^\S+\s+AS\s+build$/i.test(stages[0]![0]!.args)) problems.push(`first stage is not "FROM ... AS build": ${stages[0]![0]!.args}`);
  const final = stages.at(-1)!;
  const image = final[0]!.args.split(/\s+/)[0]!;
  const node = /^node:(\d+)(?:\.[\d.]+)?(?:-[a-z]+)*-slim(?:@sha256:[0-9a-f]{64})?$/.exec(image);
  if (!node) problems.push(`final stage is not FROM node:*-slim: ${image}`);
  else if (Number(node[1]) % 2 !== 0 || Number(node[1]) < 20) problems.push(`node:${node[1]} is not an LTS line >= 20`);
  for (const i of final.filter((x) => x.cmd === 'RUN')) {
    if (/\b(apt-get|apt|apk|dnf|yum)\b.*\b(install|add)\b/.test(i.args) && BUILD_TOOLS.test(i.args))
      problems.push(`final stage installs build tools: ${i.args}`);
    if (/\bnpm\s+(ci|install|i)\b/.test(i.args)) problems.push(`final stage runs npm install (native builds belong in the build stage): ${i.args}`);
  }
  if (!final.some((i) => i.cmd === 'COPY' && /--from=build\b/.test(i.args))) problems.push('final stage copies nothing from the build stage');
  // Without the addon every hit is copied through Node (half the speed): it is built in the build stage, from src/.
  if (!final.some((i) => i.cmd === 'COPY' && /--from=build\s+\/app\/src\/sendfile\/build\/Release\/sendfile\.node\s/.test(i.args)))
    problems.push('final stage does not copy the sendfile addon');
  const build = stages[0]!;
  const srcAt = build.findIndex((i) => i.cmd === 'COPY' && /^src\s/.test(i.args));
  const ciAt = build.findIndex((i) => i.cmd === 'RUN' && /\bnpm\s+ci\b/.test(i.args));
  if (srcAt < 0 || ciAt < srcAt) problems.push('npm ci runs before src/ is copied (the sendfile addon would not be built)');
  const user = final
    .filter((i) => i.cmd === 'USER')
    .at(-1)
    ?.args.split(':')[0];
  if (user === undefined || user === 'root' || user === '0') problems.push(`final stage runs as ${user ?? 'root (no USER)'}`);
  const health = final.find((i) => i.cmd === 'HEALTHCHECK');
  if (!health || /^NONE$/i.test(health.args)) problems.push('no HEALTHCHECK');
  // `stevedore healthcheck` probes /healthz at the configured listen address; a hard-coded port would not follow it.
  else if (!/"\/app\/dist\/main\.js",\s*"healthcheck"\]/.test(health.args)) problems.push('HEALTHCHECK does not run stevedore healthcheck');
  const volume = final.find((i) => i.cmd === 'VOLUME');
  if (!volume) problems.push('no VOLUME for the data dir');
  // The default data dir is ./data: it must land on the volume, i.e. the volume is the working directory.
  const workdir = final.filter((i) => i.cmd === 'WORKDIR').at(-1)?.args;
  if (volume && !(workdir && volume.args.includes(workdir))) problems.push(`VOLUME ${volume.args} is not the working directory ${workdir ?? '/'}`);
  // STEVEDORE_* env in the image would silently win over a mounted config file.
  if (final.some((i) => i.cmd === 'ENV' && /\bSTEVEDORE_/.test(i.args))) problems.push('final stage sets STEVEDORE_* env, which overrides a mounted config');
  return problems;
}

describe('Dockerfile', () => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');

  test('multi-stage, node LTS slim, no build tools in the final stage, non-root, HEALTHCHECK, VOLUME', () => {
    assert.deepEqual(dockerfileProblems(text), []);
  });

  test('the check can fail', () => {
    const cases: [string | RegExp, string][] = [
      [/ AS build$/m, ''],
      [/^FROM node:(\S+)-slim$/m, 'FROM node:$1'],
      [/^FROM node:\d+(\S*)$/m, 'FROM node:23$1'],
      [/^USER .*$/m, 'USER root'],
      [/^USER .*$/m, 'USER 0:0'],
      [/^USER .*$/m, ''],
      [/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ''],
      [/CMD \["node", "\/app\/dist\/main\.js", "healthcheck"\]/, `CMD ["node", "-e", "fetch('http://127.0.0.1:5000/healthz')"]`],
      [/^VOLUME .*$/m, ''],
      [/^VOLUME .*$/m, 'VOLUME ["/data"]'],
      [/^ENV NODE_ENV=production$/m, 'ENV NODE_ENV=production STEVEDORE_DATA=/var/lib/stevedore'],
      [/^USER /m, 'RUN apt-get update && apt-get install -y --no-install-recommends \\\n    python3 make g++\nUSER '],
      [/^USER /m, 'RUN npm ci\nUSER '],
      [/^COPY --from=build \/app\/src\/sendfile.*$/m, ''],
      [/^COPY src \.\/src\n(RUN npm ci[^\n]*\n)/m, '$1COPY src ./src\n'],
    ];
    for (const [from, to] of cases) assert.notDeepEqual(dockerfileProblems(mutate(text, from, to)), [], `${String(from)} -> ${to}`);
  });
});
