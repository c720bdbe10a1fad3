// deploy/haproxy + deploy/kubernetes/site-sharded as shipped: haproxy's ring matches the StatefulSet, and the node tier points at it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { DEPLOY, FILES, kindOf, loadText, yamlDocs, type Obj } from '../helpers/deploy.ts';

const HAPROXY_CFG = readFileSync(path.join(DEPLOY, 'haproxy', 'haproxy.cfg'), 'utf8');
const load = (dir: string): Obj[] =>
  FILES.filter((f) => f.startsWith(path.join(DEPLOY, 'kubernetes', dir) + path.sep) && kindOf(f) === 'yaml').flatMap(yamlDocs);

const matches = (selector: Obj | undefined, labels: Obj | undefined): boolean =>
  Object.keys(selector ?? {}).length > 0 && Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

/** Problems of the sharded site tier: haproxy's config, its Deployment and Service, the ring vs the StatefulSet. */
function shardedProblems(docs: Obj[]): string[] {
  const problems: string[] = [];
  const sts = docs.find((d) => d.kind === 'StatefulSet');
  const lb = docs.find((d) => d.kind === 'Deployment' && d.spec?.template?.spec?.containers?.[0]?.name === 'haproxy');
  if (!sts || !lb) return ['expected a StatefulSet and a Deployment running haproxy'];
  const haproxy = lb.spec.template.spec.containers[0] as Obj;
  const args = (haproxy.args ?? []) as string[];
  const cfgPath = args[args.indexOf('-f') + 1] ?? '';
  const mount = ((haproxy.volumeMounts ?? []) as Obj[]).find((m) => m.mountPath === path.posix.dirname(cfgPath));
  const cmName = ((lb.spec.template.spec.volumes ?? []) as Obj[]).find((v) => v.name === mount?.name)?.configMap?.name;
  const cfg = docs.find((d) => d.kind === 'ConfigMap' && d.metadata?.name === cmName)?.data?.[path.posix.basename(cfgPath)] as string | undefined;
  if (cfg === undefined) return [`haproxy -f ${cfgPath} is not a mounted ConfigMap key`];
  if (cfg !== HAPROXY_CFG) problems.push('the haproxy ConfigMap differs from deploy/haproxy/haproxy.cfg');

  // The hashing rules the tiers test exercises.
  if (!/^\s*balance hash var\(txn\.shard\)$/m.test(cfg)) problems.push('backend does not balance on the shard key');
  if (!/^\s*hash-type consistent\b/m.test(cfg)) problems.push('hash-type is not consistent');
  if (!/set-var\(txn\.shard\) path,regsub\(\^\.\*\/blobs\/,\)/.test(cfg)) problems.push('the blob shard key is not the path after /blobs/');

  // One server line per replica, in order, with stable ids, at the StatefulSet's stable DNS names and port.
  const stevedore = ((sts.spec?.template?.spec?.containers ?? []) as Obj[]).find((c) => c.name === 'stevedore');
  const port = ((stevedore?.ports ?? []) as Obj[]).find((p) => p.name === 'http')?.containerPort;
  const servers = [...cfg.matchAll(/^\s*server (\S+) (\S+) id (\d+)\s*$/gm)].map((m) => ({ name: m[1], address: m[2], id: Number(m[3]) }));
  const replicas = Number(sts.spec?.replicas);
  if (servers.length !== replicas) problems.push(`haproxy has ${servers.length} servers, the StatefulSet ${replicas} replicas`);
  servers.forEach((s, i) => {
    const want = `${sts.metadata.name}-${i}.${sts.spec.serviceName}.stevedore.svc.cluster.local:${port}`;
    if (s.address !== want) problems.push(`server ${s.name} is ${s.address}, expected ${want}`);
    if (s.id !== i + 1) problems.push(`server ${s.name} has id ${s.id}, expected ${i + 1} (the ring is built from ids)`);
  });

  // haproxy listens on its containerPort, and the "stevedore" Service sends to it.
  const bind = /^\s*bind :(\d+)$/m.exec(cfg);
  const hport = ((haproxy.ports ?? []) as Obj[]).find((p) => p.name === 'http')?.containerPort;
  if (!bind || Number(bind[1]) !== hport) problems.push(`haproxy binds ${bind?.[1]}, its containerPort is ${hport}`);
  const svc = docs.find((d) => d.kind === 'Service' && d.metadata?.name === 'stevedore');
  if (!svc || !matches(svc.spec?.selector, lb.spec.template.metadata?.labels)) problems.push('Service "stevedore" does not select the haproxy pods');
  else if (svc.spec.ports?.[0]?.targetPort !== 'http') problems.push('Service "stevedore" does not target haproxy\'s http port');
  if (matches(svc?.spec?.selector, sts.spec.template.metadata?.labels)) problems.push('Service "stevedore" selects the replicas directly (no hashing)');
  return problems;
}

describe('deploy: sharded site tier (haproxy + StatefulSet) and the node tier pointing at it', () => {
  const sharded = load('site-sharded');
  const node = load('node-local');

  test('haproxy.cfg: same file in the ConfigMap, one server per replica at its stable name, consistent hash on the shard key', () => {
    assert.deepEqual(shardedProblems(sharded), []);
  });

  test('the node-local config asks the site Service first (mirror, ?ns=), then each registry itself', () => {
    const text = node.find((d) => d.kind === 'ConfigMap')!.data['config.yaml'] as string;
    const config = loadText(text, 'node-config.yaml');
    const siteSvc = sharded.find((d) => d.kind === 'Service' && d.metadata.name === 'stevedore')!;
    const want = `http://${siteSvc.metadata.name}.stevedore.svc.cluster.local:${siteSvc.spec.ports[0].port}`;
    const chained = Object.values(config.upstreams).filter((u) => u.endpoints);
    assert.deepEqual(chained.map((u) => u.name).sort(), ['docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);
    for (const u of chained) {
      assert.deepEqual(
        u.endpoints!.map((e) => [e.url, e.mirror]),
        [
          [want, true],
          [u.url, false],
        ],
        u.name,
      );
    }
    // The single-replica site layout names its Service the same, so the node config fits either.
    const single = load('site').find((d) => d.kind === 'Service')!;
    assert.equal(single.metadata.name, siteSvc.metadata.name);
    assert.equal(single.spec.ports[0].port, siteSvc.spec.ports[0].port);
  });

  test('the checks can fail', () => {
    const broken = (edit: (docs: Obj[]) => void): string[] => {
      const docs = structuredClone(sharded);
      edit(docs);
      return shardedProblems(docs);
    };
    const cfgOf = (d: Obj[]): Obj => d.find((x) => x.kind === 'ConfigMap' && x.data['haproxy.cfg'])!.data;
    const cases: ((docs: Obj[]) => void)[] = [
      (d) => void (d.find((x) => x.kind === 'StatefulSet')!.spec.replicas = 4),
      (d) => void (cfgOf(d)['haproxy.cfg'] = cfgOf(d)['haproxy.cfg'].replace('hash-type consistent', 'hash-type map-based')),
      (d) => void (cfgOf(d)['haproxy.cfg'] = cfgOf(d)['haproxy.cfg'].replace('balance hash var(txn.shard)', 'balance roundrobin')),
      (d) => void (cfgOf(d)['haproxy.cfg'] = cfgOf(d)['haproxy.cfg'].replace(' id 2', ' id 7')),
      (d) => void (cfgOf(d)['haproxy.cfg'] = cfgOf(d)['haproxy.cfg'].replace('stevedore-site-1.', 'stevedore-site-2.')),
      (d) => void (d.find((x) => x.kind === 'Service' && x.metadata.name === 'stevedore')!.spec.selector['app.kubernetes.io/component'] = 'site-replica'),
      (d) => void (d.find((x) => x.kind === 'StatefulSet')!.spec.serviceName = 'other'),
    ];
    for (const edit of cases) assert.notDeepEqual(broken(edit), [], edit.toString());
  });
});
