// Test entry (`npm test`): makes sure the Debian tools the integration tests drive (and the sendfile addon) are
// installed, then runs every test.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { sep } from 'node:path';

const TOOLS = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  containerd: 'containerd',
  ctr: 'containerd',
  nginx: 'nginx-light',
  htpasswd: 'apache2-utils',
  openssl: 'openssl',
  podman: 'podman',
  haproxy: 'haproxy',
  chromium: 'chromium',
  // the sendfile addon (src/sendfile) is compiled by npm ci with node-gyp
  'g++': 'g++',
  make: 'make',
  python3: 'python3',
};
const has = (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
const missing = [
  ...new Set(
    Object.entries(TOOLS)
      .filter(([bin]) => !has(bin))
      .map(([, pkg]) => pkg),
  ),
];
if (missing.length > 0) {
  const cmd = `apt-get update && apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() === 0 && has('apt-get')) {
    console.log(`# installing Debian packages the integration tests need: ${missing.join(' ')}`);
    execFileSync('sh', ['-c', `DEBIAN_FRONTEND=noninteractive ${cmd}`], { stdio: 'inherit' });
  } else {
    console.error(`The integration tests need Debian packages: ${missing.join(' ')}\nInstall them as root:\n  ${cmd}`);
    process.exit(1);
  }
}

// Tests assert that hits leave by sendfile: the addon must be built (npm ci builds it when the compilers exist).
const ADDON = new URL('../src/sendfile/build/Release/sendfile.node', import.meta.url);
if (!existsSync(ADDON)) {
  console.log('# building the sendfile addon (npm run install)');
  spawnSync('npm', ['run', 'install', '--silent'], { stdio: 'inherit' });
  if (!existsSync(ADDON)) {
    console.error('The sendfile addon did not build (src/sendfile, node-gyp): see the output above.');
    process.exit(1);
  }
}

const files = (dir) =>
  readdirSync(new URL(dir, import.meta.url))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => `test/${dir}/${f}`);
// test/unit mirrors src/ (test/unit/<folder>/<file>.test.ts): found at any depth, sorted by path.
const filesDeep = (dir) =>
  readdirSync(new URL(dir, import.meta.url), { recursive: true })
    .map((f) => f.split(sep).join('/'))
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => `test/${dir}/${f}`);
const only = process.argv.slice(2);
const targets = only.length > 0 ? only : [...filesDeep('unit'), ...files('integration')];
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...targets], { stdio: 'inherit' });
process.exit(r.status ?? 1);
