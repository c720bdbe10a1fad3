// deploy/ and the Dockerfile as shipped: every file parses, configs load with the real loader, manifests, unit and image are wired right.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ConfigError, configSchema, loadConfig, type Config } from '../../src/config.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const DEPLOY = path.join(ROOT, 'deploy');
const rel = (file: string): string => path.relative(ROOT, file);

/** Parsed YAML/TOML, walked loosely: a missing field is a reported problem, not a type error. */
type Obj = Record<string, any>;

const tmp = mkdtempSync(path.join(os.tmpdir(), 'stevedore-deploy-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
function tmpFile(name: string, text: string): string {
  const file = path.join(tmp, `${tmpCount++}-${name}`);
  writeFileSync(file, text);
  return file;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  }).sort();
}

/** How each file under deploy/ is checked; a file with no handler fails the suite (nothing ships unchecked). */
type Kind = 'yaml' | 'json' | 'toml' | 'systemd' | 'markdown';
function kindOf(file: string): Kind | undefined {
  const base = path.basename(file);
  if (/\.ya?ml$/.test(base)) return 'yaml';
  if (base.endsWith('.json')) return 'json';
  if (base.endsWith('.toml') || base === 'registries.conf') return 'toml';
  if (/\.(service|sysusers)$/.test(base)) return 'systemd';
  if (base.endsWith('.md')) return 'markdown';
  return undefined;
}

/** Parse errors of one file's text ([] when it parses); YAML files may hold several documents. */
function parseProblems(kind: Kind, text: string): string[] {
  try {
    if (kind === 'yaml') return parseAllDocuments(text).flatMap((d) => ('errors' in d ? d.errors.map((e) => e.message) : []));
    if (kind === 'json') JSON.parse(text);
    if (kind === 'toml') parseToml(text);
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

function yamlDocs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Obj).filter((d) => d !== null && d !== undefined);
}

/** Loads a config text with the real loader, with an empty environment. */
function loadText(text: string, name = 'config.yaml'): Config {
  return loadConfig({ config: tmpFile(name, text) }, {});
}

/** `from` -> `to` in text; fails if `from` is not there (a mutation that changes nothing proves nothing). */
function mutate(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `mutation ${String(from)} did not apply`);
  return out;
}

/** Asserts that loading text throws a ConfigError whose message names key. */
function assertRejects(text: string, key: string): void {
  assert.throws(() => loadText(text), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.ok(e.message.includes(key), `"${e.message}" names ${key}`);
    return true;
  });
}

/** The server's shutdown: drain for GRACE_MS, then let fills finish for up to GRACE_MS more. */
function worstShutdownSeconds(): number {
  const m = /GRACE_MS\s*=\s*([\d_]+)/.exec(readFileSync(path.join(ROOT, 'src/serve.ts'), 'utf8'));
  assert.ok(m, 'GRACE_MS not found in src/serve.ts: update deploy.test.ts to the new shutdown logic');
  return (2 * Number(m[1]!.replace(/_/g, ''))) / 1000;
}

const FILES = walk(DEPLOY);

describe('every file under deploy/ parses', () => {
  test('the tree holds what the README and the tests below expect', () => {
    for (const f of ['config.sample.yaml', 'containerd/certs.d/docker.io/hosts.toml', 'containerd/certs.d/_default/hosts.toml',
      'podman/registries.conf', 'docker/daemon.json', 'systemd/stevedore.service', 'kubernetes/site/deployment.yaml',
      'kubernetes/node-local/daemonset.yaml', 'README.md']) {
      assert.ok(FILES.includes(path.join(DEPLOY, f)), `deploy/${f} exists`);
    }
  });

  for (const file of FILES) {
    test(rel(file), () => {
      const kind = kindOf(file);
      assert.ok(kind, `${rel(file)}: no check knows this kind of file; add one to deploy.test.ts`);
      const text = readFileSync(file, 'utf8');
      assert.deepEqual(parseProblems(kind, text), [], `${rel(file)} parses as ${kind}`);
      // Convention: the first line says the file's one job (JSON cannot hold a comment; Markdown has its title).
      if (kind !== 'json' && kind !== 'markdown') assert.match(text.split('\n')[0]!, /^# \S/, `${rel(file)} starts with a comment`);
    });
  }

  test('a parse error is caught in every format', () => {
    assert.notDeepEqual(parseProblems('yaml', 'a: 1\n---\nb: [1, 2\n'), []);
    assert.notDeepEqual(parseProblems('yaml', 'a: 1\na: 2\n'), []);
    assert.notDeepEqual(parseProblems('json', '{"registry-mirrors": ["x",]}'), []);
    assert.notDeepEqual(parseProblems('toml', '[host."http://x:5000"]\n  capabilities = ["pull", "resolve"\n'), []);
    assert.notDeepEqual(parseProblems('toml', 'server = "a"\nserver = "b"\n'), []);
  });
});

// ---------------------------------------------------------------------------------------------------------
// config.sample.yaml

/** Example lines "# key: value" (also "#   - key: value") with the "# " removed; prose comments stay comments. */
const COMMENTED_KEY = /^(\s*)# (\s*(?:- )?[A-Za-z_][A-Za-z0-9_]*:(?:\s.*)?)$/;
function uncomment(text: string): string {
  return text.split('\n').map((l) => l.replace(COMMENTED_KEY, '$1$2')).join('\n');
}

interface SchemaNode {
  _zod: { def: { type: string; innerType?: SchemaNode; in?: SchemaNode; shape?: Record<string, SchemaNode>; valueType?: SchemaNode; element?: SchemaNode } };
}

/** Every key path of a zod schema: "timeouts.connect", "upstreams.*.url", "foreign.rules.[].match". */
function schemaPaths(node: SchemaNode, prefix: string[] = []): string[][] {
  const def = node._zod.def;
  if (def.innerType) return schemaPaths(def.innerType, prefix);
  if (def.type === 'pipe' && def.in) return schemaPaths(def.in, prefix);
  if (def.type === 'record' && def.valueType) return schemaPaths(def.valueType, [...prefix, '*']);
  if (def.type === 'array' && def.element) return schemaPaths(def.element, [...prefix, '[]']);
  if (def.type === 'object' && def.shape) {
    return Object.entries(def.shape).flatMap(([k, v]) => [[...prefix, k], ...schemaPaths(v, [...prefix, k])]);
  }
  return [];
}

function hasPath(value: unknown, segs: string[]): boolean {
  if (segs.length === 0) return true;
  const [seg, ...rest] = segs as [string, ...string[]];
  if (seg === '[]') return Array.isArray(value) && value.some((v) => hasPath(v, rest));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  if (seg === '*') return Object.values(value).some((v) => hasPath(v, rest));
  return seg in value && hasPath((value as Obj)[seg], rest);
}

describe('deploy/config.sample.yaml', () => {
  const file = path.join(DEPLOY, 'config.sample.yaml');
  const text = readFileSync(file, 'utf8');
  const full = uncomment(text);

  test('loads with the real config loader as shipped, with no secrets', () => {
    const c = loadConfig({ config: file }, {});
    assert.equal(c.adminToken, undefined);
    for (const u of Object.values(c.upstreams)) assert.equal(u.credentials, undefined, `${u.name} has no credentials in the sample`);
  });

  test('active keys show the defaults (upstreams aside)', () => {
    const sample = loadConfig({ config: file }, {}) as unknown as Obj;
    const defaults = loadConfig({}, {}) as unknown as Obj;
    for (const key of Object.keys(defaults)) {
      if (key === 'upstreams') continue;
      assert.deepEqual(sample[key], defaults[key], `${key}: the sample's value is the default`);
    }
  });

  test('with every "# key: value" example uncommented it still passes the schema', () => {
    assert.notEqual(full, text);
    const r = configSchema.safeParse(parseYaml(full));
    assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues));
  });

  test('documents every key of configSchema (as an active key or a "# key: value" example)', () => {
    const doc = parseYaml(full) as unknown;
    const paths = schemaPaths(configSchema as unknown as SchemaNode);
    for (const key of ['listen', 'upstreams.*.passwordFile', 'timeouts.bodyIdle', 'circuitBreaker.cooldown', 'maxSize']) {
      assert.ok(paths.some((p) => p.join('.') === key), `schema walk finds ${key}`);
    }
    const missing = paths.filter((p) => !hasPath(doc, p)).map((p) => p.join('.'));
    assert.deepEqual(missing, [], 'keys of configSchema missing from deploy/config.sample.yaml');
  });

  test('the coverage check can fail: a key dropped from the sample is reported', () => {
    const doc = parseYaml(mutate(full, /^sweepInterval: .*$/m, '')) as unknown;
    assert.equal(hasPath(doc, ['sweepInterval']), false);
    const noFile = parseYaml(mutate(full, /^\s+tokenFile: .*$/m, '')) as unknown;
    assert.equal(hasPath(noFile, ['upstreams', '*', 'tokenFile']), false);
  });

  test('a broken copy is rejected, naming the key', () => {
    assertRejects(mutate(text, /^tagTtl: 30$/m, 'tagTtl: thirty'), 'tagTtl');
    assertRejects(mutate(text, /^retries: 3$/m, 'retrys: 3'), 'retrys');
    assertRejects(mutate(text, /^ {2}bodyIdle: 30000$/m, '  bodyIdle: -1'), 'timeouts.bodyIdle');
    assertRejects(mutate(text, /^logLevel: info$/m, 'logLevel: verbose'), 'logLevel');
    assertRejects(mutate(full, /^adminToken: .*$/m, 'adminToken: short'), 'adminToken');
  });
});

// ---------------------------------------------------------------------------------------------------------
// containerd hosts.toml

function hostsTomlProblems(text: string): string[] {
  const doc = parseToml(text) as Obj;
  const problems: string[] = [];
  if (doc.server !== undefined && !/^https?:\/\/[^/]+$/.test(String(doc.server))) problems.push(`server is not an http(s) origin: ${doc.server}`);
  const hosts = (doc.host ?? {}) as Obj;
  const good = Object.entries(hosts).filter(([url, h]) => /^https?:\/\//.test(url) && Array.isArray(h?.capabilities)
    && h.capabilities.includes('pull') && h.capabilities.includes('resolve'));
  if (good.length === 0) problems.push('no [host."http(s)://..."] with capabilities ["pull", "resolve"]');
  return problems;
}

describe('deploy/containerd/certs.d/*/hosts.toml', () => {
  const files = FILES.filter((f) => path.basename(f) === 'hosts.toml');
  test('there are some', () => assert.ok(files.length >= 2));
  for (const file of files) {
    test(`${rel(file)}: a mirror host with pull + resolve`, () => {
      assert.deepEqual(hostsTomlProblems(readFileSync(file, 'utf8')), []);
    });
  }
  test('the check can fail', () => {
    const text = readFileSync(path.join(DEPLOY, 'containerd/certs.d/docker.io/hosts.toml'), 'utf8');
    assert.notDeepEqual(hostsTomlProblems(mutate(text, '["pull", "resolve"]', '["pull"]')), []);
    assert.notDeepEqual(hostsTomlProblems(mutate(text, /\[host\.[^\]]+\]/, '[mirror."http://x:5000"]')), []);
    assert.notDeepEqual(hostsTomlProblems('server = "https://registry-1.docker.io"\n'), []);
  });
});

// ---------------------------------------------------------------------------------------------------------
// systemd unit

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
    Restart: 'on-failure', NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes',
    StateDirectory: 'stevedore', CapabilityBoundingSet: '', RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
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

// ---------------------------------------------------------------------------------------------------------
// Kubernetes

interface Workload {
  dir: string;
  docs: Obj[];
}

function portOf(container: Obj, port: unknown): number | undefined {
  const ports = (container.ports ?? []) as Obj[];
  const p = typeof port === 'string' ? ports.find((q) => q.name === port) : ports.find((q) => q.containerPort === port);
  return p?.containerPort as number | undefined;
}

/** Problems of one deploy/kubernetes/<dir>: workload, its ConfigMap config (real loader), probes, security, volumes. */
function kubernetesProblems({ dir, docs }: Workload, graceSeconds: number): string[] {
  const problems: string[] = [];
  const byKind = (kind: string): Obj[] => docs.filter((d) => d.kind === kind);
  const workloads = docs.filter((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet');
  if (workloads.length !== 1) return [`${dir}: expected one Deployment or DaemonSet, found ${workloads.length}`];
  const w = workloads[0]!;
  const pod = (w.spec?.template?.spec ?? {}) as Obj;
  const labels = (w.spec?.template?.metadata?.labels ?? {}) as Obj;
  const selector = (w.spec?.selector?.matchLabels ?? {}) as Obj;
  if (Object.keys(selector).length === 0 || Object.entries(selector).some(([k, v]) => labels[k] !== v)) problems.push('selector does not match the pod labels');
  const c = ((pod.containers ?? []) as Obj[]).find((x) => x.name === 'stevedore');
  if (!c) return [...problems, 'no container named stevedore'];

  // Probes: the right paths, on a port the container declares.
  const probe = (name: string, pathWanted: string): void => {
    const get = c[name]?.httpGet as Obj | undefined;
    if (get?.path !== pathWanted) problems.push(`${name} path is ${get?.path}, expected ${pathWanted}`);
    if (portOf(c, get?.port) === undefined) problems.push(`${name} port ${get?.port} is not a container port`);
  };
  probe('readinessProbe', '/readyz');
  probe('livenessProbe', '/healthz');
  if (c.startupProbe) probe('startupProbe', '/healthz');

  // Config: --config FILE is a ConfigMap key mounted in the container, and it loads with the real loader.
  const args = (c.args ?? []) as string[];
  if (args[0] !== 'serve') problems.push(`args do not start with serve: ${JSON.stringify(args)}`);
  const configPath = args[args.indexOf('--config') + 1];
  const mounts = (c.volumeMounts ?? []) as Obj[];
  const volumes = (pod.volumes ?? []) as Obj[];
  const mount = mounts.find((m) => configPath !== undefined && path.posix.dirname(configPath) === m.mountPath);
  const cmName = volumes.find((v) => v.name === mount?.name)?.configMap?.name as string | undefined;
  const cm = byKind('ConfigMap').find((m) => m.metadata?.name === cmName);
  const configText = cm?.data?.[path.posix.basename(configPath ?? '')] as string | undefined;
  if (!args.includes('--config') || configText === undefined) {
    problems.push(`--config ${configPath} is not a key of a ConfigMap in ${dir} mounted at its directory`);
  } else {
    let config: Config | undefined;
    try {
      config = loadText(configText, `${path.basename(dir)}-config.yaml`);
    } catch (e) {
      problems.push(`ConfigMap ${cmName} config.yaml: ${(e as Error).message}`);
    }
    if (config) {
      if (!((c.ports ?? []) as Obj[]).some((p) => p.containerPort === config.port)) problems.push(`listen port ${config.port} is not a containerPort`);
      const dataMount = mounts.find((m) => m.mountPath === config.data);
      const dataVolume = volumes.find((v) => v.name === dataMount?.name);
      if (!dataVolume) problems.push(`data ${config.data} is not a mounted volume`);
      if (w.kind === 'Deployment') {
        const claim = dataVolume?.persistentVolumeClaim?.claimName as string | undefined;
        const pvc = byKind('PersistentVolumeClaim').find((p) => p.metadata?.name === claim);
        if (!pvc) problems.push(`data volume is not a PersistentVolumeClaim defined in ${dir}`);
        else if (!(pvc.spec?.accessModes ?? []).includes('ReadWriteOnce')) problems.push('PVC is not ReadWriteOnce');
      } else if (!dataVolume?.emptyDir && !dataVolume?.hostPath) problems.push('node-local data volume is neither emptyDir nor hostPath');
    }
  }

  // Security: non-root uid 1000, read-only root, no capabilities, RuntimeDefault seccomp.
  const psc = (pod.securityContext ?? {}) as Obj;
  const csc = (c.securityContext ?? {}) as Obj;
  const eff = (k: string): unknown => csc[k] ?? psc[k];
  if (eff('runAsNonRoot') !== true) problems.push('runAsNonRoot is not true');
  if (eff('runAsUser') !== 1000) problems.push(`runAsUser is ${eff('runAsUser')}, expected 1000`);
  if (csc.readOnlyRootFilesystem !== true) problems.push('readOnlyRootFilesystem is not true');
  if (csc.allowPrivilegeEscalation !== false) problems.push('allowPrivilegeEscalation is not false');
  if (!(csc.capabilities?.drop ?? []).includes('ALL')) problems.push('capabilities do not drop ALL');
  if ((csc.capabilities?.add ?? []).length > 0) problems.push('capabilities are added');
  if ((eff('seccompProfile') as Obj | undefined)?.type !== 'RuntimeDefault') problems.push('seccompProfile is not RuntimeDefault');
  if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory) problems.push('resources need cpu+memory requests and a memory limit');
  if (pod.enableServiceLinks !== false) problems.push('enableServiceLinks must be false (Service env vars are named STEVEDORE_*)');
  if (!(Number(pod.terminationGracePeriodSeconds ?? 30) > graceSeconds)) problems.push(`terminationGracePeriodSeconds is not above the ${graceSeconds} s shutdown`);
  if (c.image !== 'stevedore:latest') problems.push(`image is ${c.image}`);

  if (w.kind === 'Deployment') {
    if (w.spec?.replicas !== 1) problems.push(`replicas is ${w.spec?.replicas}, expected 1`);
    if (w.spec?.strategy?.type !== 'Recreate') problems.push('strategy is not Recreate (the data dir is a ReadWriteOnce volume)');
    const svc = byKind('Service')[0];
    if (!svc) problems.push(`no Service in ${dir}`);
    else {
      const sel = (svc.spec?.selector ?? {}) as Obj;
      if (Object.keys(sel).length === 0 || Object.entries(sel).some(([k, v]) => labels[k] !== v)) problems.push('Service selector does not match the pod labels');
      for (const p of (svc.spec?.ports ?? []) as Obj[]) if (portOf(c, p.targetPort) === undefined) problems.push(`Service targetPort ${p.targetPort} is not a container port`);
    }
  } else if (!((c.ports ?? []) as Obj[]).some((p) => p.hostPort === 5000)) {
    problems.push('DaemonSet has no hostPort 5000');
  }
  return problems;
}

describe('deploy/kubernetes', () => {
  const grace = worstShutdownSeconds();
  const load = (dir: string): Workload => {
    const full = path.join(DEPLOY, 'kubernetes', dir);
    const docs = FILES.filter((f) => f.startsWith(full + path.sep) && kindOf(f) === 'yaml').flatMap(yamlDocs);
    return { dir: `deploy/kubernetes/${dir}`, docs };
  };
  const site = load('site');
  const node = load('node-local');

  test('every object has apiVersion, kind and metadata.name', () => {
    for (const d of [...site.docs, ...node.docs]) {
      assert.ok(typeof d.apiVersion === 'string' && typeof d.kind === 'string' && typeof d.metadata?.name === 'string', JSON.stringify(d).slice(0, 200));
    }
  });

  test('site: Deployment (1 replica, Recreate) + Service + PVC + ConfigMap whose config.yaml loads', () => {
    assert.deepEqual(site.docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'Service']);
    assert.deepEqual(kubernetesProblems(site, grace), []);
  });

  test('node-local: DaemonSet with hostPort 5000 + ConfigMap whose config.yaml loads', () => {
    assert.deepEqual(node.docs.map((d) => d.kind).sort(), ['ConfigMap', 'DaemonSet']);
    assert.deepEqual(kubernetesProblems(node, grace), []);
  });

  test('each ConfigMap config.yaml, broken, is rejected naming the key', () => {
    for (const w of [site, node]) {
      const text = w.docs.find((d) => d.kind === 'ConfigMap')!.data['config.yaml'] as string;
      assertRejects(mutate(text, /^tagTtl: 30$/m, 'tagTtl: -5'), 'tagTtl');
      assertRejects(mutate(text, /^maxSize: .*$/m, 'maxSize: lots'), 'maxSize');
      assertRejects(mutate(text, /^logLevel: info$/m, 'loglevel: info'), 'loglevel');
    }
  });

  test('the checks can fail', () => {
    const broken = (w: Workload, edit: (docs: Obj[]) => void): string[] => {
      const docs = structuredClone(w.docs);
      edit(docs);
      return kubernetesProblems({ dir: w.dir, docs }, grace);
    };
    const container = (docs: Obj[]): Obj => docs.find((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')!.spec.template.spec.containers[0];
    const cases: [Workload, (docs: Obj[]) => void][] = [
      [site, (d) => void (container(d).readinessProbe.httpGet.path = '/healthz')],
      [site, (d) => void (container(d).livenessProbe.httpGet.path = '/readyz')],
      [site, (d) => void (container(d).livenessProbe.httpGet.port = 'metrics')],
      [site, (d) => void (container(d).readinessProbe.httpGet.port = 8080)],
      [site, (d) => void (container(d).ports[0].containerPort = 8080)],
      [site, (d) => void (d.find((x) => x.kind === 'Deployment')!.spec.strategy.type = 'RollingUpdate')],
      [site, (d) => void (d.find((x) => x.kind === 'Deployment')!.spec.replicas = 2)],
      [site, (d) => void (d.find((x) => x.kind === 'ConfigMap')!.data['config.yaml'] += 'tagTtl: soon\n')],
      [site, (d) => void (d.find((x) => x.kind === 'ConfigMap')!.data['config.yaml'] = 'listen: 0.0.0.0:6000\ndata: /var/lib/stevedore\n')],
      [site, (d) => void (d.find((x) => x.kind === 'Service')!.spec.ports[0].targetPort = 'web')],
      [site, (d) => void (container(d).securityContext.readOnlyRootFilesystem = false)],
      [site, (d) => void (container(d).securityContext.capabilities.drop = ['NET_RAW'])],
      [node, (d) => void (container(d).ports[0].hostPort = 5001)],
      [node, (d) => void (container(d).args = ['serve'])],
      [node, (d) => void (d.find((x) => x.kind === 'DaemonSet')!.spec.template.spec.securityContext.runAsNonRoot = false)],
    ];
    for (const [w, edit] of cases) assert.notDeepEqual(broken(w, edit), [], edit.toString());
  });
});

// ---------------------------------------------------------------------------------------------------------
// Dockerfile (no engine here to build it: static checks of what it promises)

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
    if (/\b(apt-get|apt|apk|dnf|yum)\b.*\b(install|add)\b/.test(i.args) && BUILD_TOOLS.test(i.args)) problems.push(`final stage installs build tools: ${i.args}`);
    if (/\bnpm\s+(ci|install|i)\b/.test(i.args)) problems.push(`final stage runs npm install (native builds belong in the build stage): ${i.args}`);
  }
  if (!final.some((i) => i.cmd === 'COPY' && /--from=build\b/.test(i.args))) problems.push('final stage copies nothing from the build stage');
  const user = final.filter((i) => i.cmd === 'USER').at(-1)?.args.split(':')[0];
  if (user === undefined || user === 'root' || user === '0') problems.push(`final stage runs as ${user ?? 'root (no USER)'}`);
  const health = final.find((i) => i.cmd === 'HEALTHCHECK');
  if (!health || /^NONE$/i.test(health.args)) problems.push('no HEALTHCHECK');
  else if (!health.args.includes('/healthz')) problems.push('HEALTHCHECK does not probe /healthz');
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
      [/^VOLUME .*$/m, ''],
      [/^VOLUME .*$/m, 'VOLUME ["/data"]'],
      [/^ENV NODE_ENV=production$/m, 'ENV NODE_ENV=production STEVEDORE_DATA=/var/lib/stevedore'],
      [/^USER /m, 'RUN apt-get update && apt-get install -y --no-install-recommends \\\n    python3 make g++\nUSER '],
      [/^USER /m, 'RUN npm ci\nUSER '],
    ];
    for (const [from, to] of cases) assert.notDeepEqual(dockerfileProblems(mutate(text, from, to)), [], `${String(from)} -> ${to}`);
  });
});
