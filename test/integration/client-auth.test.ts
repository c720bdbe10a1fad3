// Client authentication and access rules: htpasswd users and node tokens, skopeo and containerd with and without
// credentials (401 -> login -> 200), 403 for a repository the rules refuse, the failed-attempt limit, check-config.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { startContainerd, writeHostsToml, type Containerd } from '../helpers/containerd.ts';
import { pushImage, type PushedImage } from '../helpers/images.ts';
import { basicAuth, htpasswdLines, startRegistry, type Registry } from '../helpers/registry.ts';
import { copyToOciDir } from '../helpers/skopeo.ts';
import { startInProcess, startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, runCommand, waitFor, type TempDir } from '../helpers/tmp.ts';

const NODE_TOKEN = 'node-token-0123456789abcdef';
const MAIN = path.resolve(import.meta.dirname, '../../dist/main.js');

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const res = await request(url, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json', ...headers }, signal: AbortSignal.timeout(20_000) });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const code = (body: string): string | undefined => (JSON.parse(body) as { errors: { code: string }[] }).errors[0]?.code;

describe('client authentication and access rules', () => {
  let reg: Registry;
  let sd: StevedoreProcess;
  let ctd: Containerd;
  let tmp: TempDir;
  let config: Record<string, unknown>;
  let secret: PushedImage;

  before(async () => {
    tmp = makeTempDir('stevedore-client-auth-');
    [reg, ctd] = await Promise.all([startRegistry({ users: { alice: 'alice-pw' } }), startContainerd()]);
    const authed = `http://alice:alice-pw@${reg.host}`;
    secret = await pushImage(authed, 'team-a/app', 'v1', { layers: [{ seed: 901, sizeBytes: 6_000 }], mediaTypes: 'oci' });
    await pushImage(authed, 'public/app', 'v1', { layers: [{ seed: 902, sizeBytes: 5_000 }], mediaTypes: 'oci' });
    const htpasswd = path.join(tmp.path, 'htpasswd');
    writeFileSync(htpasswd, htpasswdLines({ carol: 'carol-pw', dave: 'dave-pw' }));
    const tokens = path.join(tmp.path, 'tokens');
    writeFileSync(tokens, `# node tokens\nnode-1 ${NODE_TOKEN}\n`);
    config = {
      upstreams: { [reg.host]: { url: reg.url, username: 'alice', password: 'alice-pw' } },
      auth: {
        htpasswd,
        tokensFile: tokens,
        groups: { nodes: ['node-1'] },
        rules: [
          { who: ['carol', 'group:nodes'], repositories: ['team-a/*', 'public/*'] },
          { who: ['dave'], repositories: ['team-a/*'], action: 'deny' },
          { who: ['*'], repositories: ['public/*'] },
        ],
      },
    };
    sd = await startStevedore({ upstreams: [reg.url], config });
  });
  after(async () => {
    await sd?.stop();
    await Promise.allSettled([reg?.destroy(), ctd?.stop()]);
    await tmp?.cleanup();
  });

  test('GET /v2/ challenges with Basic realm="stevedore"; the rules decide per user and repository', async () => {
    const ping = await get(`${sd.url}/v2/`);
    assert.equal(ping.status, 401);
    assert.equal(ping.headers['www-authenticate'], 'Basic realm="stevedore"');
    assert.equal((await get(`${sd.url}/v2/`, basicAuth('carol', 'carol-pw'))).status, 200);
    const m = `${sd.url}/v2/team-a/app/manifests/v1`;
    const anon = await get(m);
    assert.deepEqual([anon.status, code(anon.body), anon.headers['www-authenticate']], [401, 'UNAUTHORIZED', 'Basic realm="stevedore"']);
    assert.equal((await get(m, basicAuth('carol', 'wrong'))).status, 401);
    const carol = await get(m, basicAuth('carol', 'carol-pw'));
    assert.equal(carol.status, 200);
    assert.equal(carol.body, secret.manifestBytes.toString());
    const dave = await get(m, basicAuth('dave', 'dave-pw'));
    assert.deepEqual([dave.status, code(dave.body)], [403, 'DENIED']);
    assert.equal((await get(`${sd.url}/v2/team-a/app/blobs/${secret.layers[0]!.digest}`, basicAuth('dave', 'dave-pw'))).status, 403, 'blobs too');
    assert.equal((await get(`${sd.url}/v2/team-a/app/tags/list`, basicAuth('dave', 'dave-pw'))).status, 403, 'tags too');
    assert.equal((await get(`${sd.url}/v2/public/app/manifests/v1`, basicAuth('dave', 'dave-pw'))).status, 200);
    assert.equal((await get(m, { authorization: `Bearer ${NODE_TOKEN}` })).status, 200, 'a node token as Bearer');
    assert.equal((await get(m, basicAuth('node-1', NODE_TOKEN))).status, 200, 'a node token as a Basic password');
    assert.equal((await get(m, { authorization: 'Bearer not-a-token-of-ours' })).status, 401);
  });

  test('skopeo: without credentials 401, with --src-creds 200, a refused user 403', async () => {
    const ref = `docker://${sd.host}/team-a/app:v1`;
    const none = await copyToOciDir(ref, path.join(tmp.path, 'sk-none'));
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /unauthorized|authentication required|401/i);
    const ok = await copyToOciDir(ref, path.join(tmp.path, 'sk-carol'), { extraArgs: ['--src-creds', 'carol:carol-pw'] });
    assert.equal(ok.code, 0, ok.stderr);
    const refused = await copyToOciDir(ref, path.join(tmp.path, 'sk-dave'), { extraArgs: ['--src-creds', 'dave:dave-pw'] });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /denied|403/i);
  });

  test('containerd: ctr without credentials fails, with --user (and a node token) pulls and unpacks', async () => {
    const hosts = path.join(tmp.path, 'hosts');
    writeHostsToml(hosts, sd.host, sd.url);
    const ref = `${sd.host}/team-a/app:v1`;
    const none = await ctd.pull(ref, { hostsDir: hosts });
    assert.notEqual(none.code, 0);
    assert.match(none.stderr + none.stdout, /401|unauthorized/i);
    const ok = await ctd.pull(ref, { hostsDir: hosts, extraArgs: ['--user', 'carol:carol-pw'] });
    assert.equal(ok.code, 0, ok.stderr);
    await ctd.clearContent();
    const node = await ctd.pull(ref, { hostsDir: hosts, extraArgs: ['--user', `node-1:${NODE_TOKEN}`] });
    assert.equal(node.code, 0, node.stderr);
    // A node's hosts.toml can carry its token as a header (README "Security model"): no --user needed.
    await ctd.clearContent();
    const withHeader = path.join(tmp.path, 'hosts-header');
    const file = writeHostsToml(withHeader, sd.host, sd.url);
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n[host.${JSON.stringify(sd.url)}.header]\n  authorization = "Bearer ${NODE_TOKEN}"\n`);
    const viaHeader = await ctd.pull(ref, { hostsDir: withHeader });
    assert.equal(viaHeader.code, 0, viaHeader.stderr);
  });

  test('failed attempts are limited per source address: then 429 with Retry-After, even with the right password', async () => {
    const s = await startInProcess({ upstream: [reg.url], configObject: { ...config, auth: { ...(config.auth as object), maxFailures: 3 } } });
    try {
      const m = `${s.url}/v2/public/app/manifests/v1`;
      for (let i = 0; i < 3; i++) assert.equal((await get(m, basicAuth('carol', `bad-${i}`))).status, 401);
      const blocked = await get(m, basicAuth('carol', 'carol-pw'));
      assert.equal(blocked.status, 429);
      assert.ok(Number(blocked.headers['retry-after']) > 0);
    } finally {
      await s.stop();
    }
  });

  test('--workers 2: the limit holds for the whole server, not per worker (attempts counted in the primary)', async () => {
    const s = await startStevedore({ upstreams: [reg.url], config: { ...config, auth: { ...(config.auth as object), maxFailures: 3 } }, workers: 2 });
    try {
      await waitFor('both workers listening', () => (s.logs().match(/worker listening/g) ?? []).length >= 2 || undefined, 15_000, 50);
      const statuses: number[] = [];
      // A new connection each: the kernel hands them to both workers in turn.
      for (let i = 0; i < 8; i++) {
        const res = await request(`${s.url}/v2/public/app/manifests/v1`, {
          reset: true,
          headers: basicAuth('carol', `bad-${i}`),
          signal: AbortSignal.timeout(20_000),
        });
        await res.body.dump();
        statuses.push(res.statusCode);
      }
      assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429, 429, 429]);
    } finally {
      await s.stop();
    }
  });

  test('behind a trusted proxy (server.trustedProxies) the limit is per forwarded client: one client locked out, another served; without it they share one address', async () => {
    const authCfg = { ...(config.auth as object), maxFailures: 3 };
    const m = (s: { url: string }) => `${s.url}/v2/public/app/manifests/v1`;
    const from = (addr: string) => ({ 'x-forwarded-for': addr });
    const behind = await startInProcess({ upstream: [reg.url], configObject: { ...config, auth: authCfg, server: { trustedProxies: ['127.0.0.1'] } } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(m(behind), { ...basicAuth('carol', `bad-${i}`), ...from('203.0.113.5') })).status, 401);
      assert.equal((await get(m(behind), { ...basicAuth('carol', 'carol-pw'), ...from('203.0.113.5') })).status, 429, 'the failing client is limited');
      assert.equal(
        (await get(m(behind), { ...basicAuth('carol', 'carol-pw'), ...from('198.51.100.7') })).status,
        200,
        'another client behind the proxy is served',
      );
    } finally {
      await behind.stop();
    }
    const direct = await startInProcess({ upstream: [reg.url], configObject: { ...config, auth: authCfg } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(m(direct), { ...basicAuth('carol', `bad-${i}`), ...from('203.0.113.5') })).status, 401);
      // Not trusted: the header is the client's own claim, so both "clients" are the one socket address.
      assert.equal((await get(m(direct), { ...basicAuth('carol', 'carol-pw'), ...from('198.51.100.7') })).status, 429);
    } finally {
      await direct.stop();
    }
  });

  test('check-config shows the auth section with names only; no hash, password or token', async () => {
    const file = path.join(tmp.path, 'cfg.yaml');
    writeFileSync(file, JSON.stringify({ ...config, upstreams: { [reg.host]: { url: reg.url, username: 'alice', password: 'alice-pw' } } }));
    const r = await runCommand(process.execPath, [MAIN, 'check-config', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    // YAML usable as --config: the auth section as configured (file names, groups, rules); the names the files
    // hold in a comment.
    const out = parseYaml(r.stdout) as { auth: { rules: unknown[] } };
    assert.equal(out.auth.rules.length, 3);
    assert.match(r.stdout, /^# auth: htpasswd users: (carol, dave|dave, carol); node tokens: node-1\.$/m);
    for (const s of [NODE_TOKEN, 'alice-pw', '$2y$']) assert.ok(!r.stdout.includes(s), `check-config printed ${s}`);
  });

  test('without auth: it starts, and warns at startup that an upstream with credentials is open to anyone', async () => {
    const open = await startStevedore({ upstreams: [reg.url], config: { upstreams: config.upstreams } });
    try {
      await waitFor('the startup warning', () => /no client authentication/.test(open.logs()) || undefined, 10_000, 50);
      assert.match(open.logs(), new RegExp(reg.host.replace(/\./g, '\\.')));
      assert.equal((await get(`${open.url}/v2/team-a/app/manifests/v1`)).status, 200);
    } finally {
      await open.stop();
    }
  });
});
