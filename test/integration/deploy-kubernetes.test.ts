// deploy/kubernetes as shipped: workloads, probes, security, volumes, and ConfigMap configs that load with the real loader.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Config } from '../../src/config/load.ts';
import { assertRejects, DEPLOY, FILES, kindOf, loadText, mutate, worstShutdownSeconds, yamlDocs, type Obj } from '../helpers/deploy.ts';

const WORKLOADS = ['Deployment', 'DaemonSet', 'StatefulSet'];

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
  // The stevedore workload (a sharded site also has haproxy's Deployment, checked in deploy-sharded.test.ts).
  const workloads = docs.filter((d) => WORKLOADS.includes(d.kind) && ((d.spec?.template?.spec?.containers ?? []) as Obj[]).some((c) => c.name === 'stevedore'));
  if (workloads.length !== 1) return [`${dir}: expected one Deployment, DaemonSet or StatefulSet running stevedore, found ${workloads.length}`];
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
      const claimTemplate = ((w.spec?.volumeClaimTemplates ?? []) as Obj[]).find((t) => t.metadata?.name === dataMount?.name);
      const dataVolume = volumes.find((v) => v.name === dataMount?.name);
      if (!dataVolume && !claimTemplate) problems.push(`data ${config.data} is not a mounted volume`);
      if (w.kind === 'StatefulSet') {
        // Each replica its own volume.
        if (!claimTemplate) problems.push('data volume is not one of the volumeClaimTemplates (each replica its own volume)');
        else if (!(claimTemplate.spec?.accessModes ?? []).includes('ReadWriteOnce')) problems.push('volumeClaimTemplate is not ReadWriteOnce');
      } else if (w.kind === 'Deployment') {
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
  if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory || !c.resources?.limits?.memory)
    problems.push('resources need cpu+memory requests and a memory limit');
  if (pod.enableServiceLinks !== false) problems.push('enableServiceLinks must be false (Service env vars are named STEVEDORE_*)');
  if (!(Number(pod.terminationGracePeriodSeconds ?? 30) > graceSeconds))
    problems.push(`terminationGracePeriodSeconds is not above the ${graceSeconds} s shutdown`);
  if (c.image !== 'stevedore:latest') problems.push(`image is ${c.image}`);

  if (w.kind === 'Deployment') {
    if (w.spec?.replicas !== 1) problems.push(`replicas is ${w.spec?.replicas}, expected 1`);
    if (w.spec?.strategy?.type !== 'Recreate') problems.push('strategy is not Recreate (the data dir is a ReadWriteOnce volume)');
    const svc = byKind('Service')[0];
    if (!svc) problems.push(`no Service in ${dir}`);
    else {
      const sel = (svc.spec?.selector ?? {}) as Obj;
      if (Object.keys(sel).length === 0 || Object.entries(sel).some(([k, v]) => labels[k] !== v))
        problems.push('Service selector does not match the pod labels');
      for (const p of (svc.spec?.ports ?? []) as Obj[])
        if (portOf(c, p.targetPort) === undefined) problems.push(`Service targetPort ${p.targetPort} is not a container port`);
    }
  } else if (w.kind === 'StatefulSet') {
    const svc = byKind('Service').find((s) => s.metadata?.name === w.spec?.serviceName);
    if (!svc) problems.push(`no Service named serviceName ${w.spec?.serviceName} in ${dir}`);
    else {
      if (svc.spec?.clusterIP !== 'None') problems.push(`Service ${svc.metadata.name} is not headless (clusterIP: None)`);
      const sel = (svc.spec?.selector ?? {}) as Obj;
      if (Object.keys(sel).length === 0 || Object.entries(sel).some(([k, v]) => labels[k] !== v))
        problems.push('headless Service selector does not match the pod labels');
    }
    if (!(Number(w.spec?.replicas) >= 2)) problems.push(`replicas is ${w.spec?.replicas}: a sharded site has several`);
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
  const sharded = load('site-sharded');

  test('every object has apiVersion, kind and metadata.name', () => {
    for (const d of [...site.docs, ...node.docs, ...sharded.docs]) {
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

  test('site-sharded: StatefulSet (volumeClaimTemplates) + headless Service, whose stevedore config.yaml loads', () => {
    assert.deepEqual(sharded.docs.map((d) => d.kind).sort(), ['ConfigMap', 'ConfigMap', 'Deployment', 'Service', 'Service', 'StatefulSet']);
    assert.deepEqual(kubernetesProblems(sharded, grace), []);
  });

  test('each ConfigMap config.yaml, broken, is rejected naming the key', () => {
    for (const w of [site, node, sharded]) {
      const text = w.docs.find((d) => d.kind === 'ConfigMap' && d.data['config.yaml'])!.data['config.yaml'] as string;
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
    const container = (docs: Obj[]): Obj =>
      docs.find((d) => WORKLOADS.includes(d.kind) && d.spec.template.spec.containers[0].name === 'stevedore')!.spec.template.spec.containers[0];
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
      [sharded, (d) => void (d.find((x) => x.kind === 'StatefulSet')!.spec.volumeClaimTemplates[0].metadata.name = 'cache')],
      [sharded, (d) => void (d.find((x) => x.kind === 'StatefulSet')!.spec.serviceName = 'stevedore')],
      [sharded, (d) => void delete d.find((x) => x.kind === 'Service' && x.metadata.name === 'stevedore-site')!.spec.clusterIP],
      [sharded, (d) => void (d.find((x) => x.kind === 'StatefulSet')!.spec.replicas = 1)],
      [node, (d) => void (container(d).args = ['serve'])],
      [node, (d) => void (d.find((x) => x.kind === 'DaemonSet')!.spec.template.spec.securityContext.runAsNonRoot = false)],
    ];
    for (const [w, edit] of cases) assert.notDeepEqual(broken(w, edit), [], edit.toString());
  });
});
