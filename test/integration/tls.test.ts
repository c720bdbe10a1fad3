// TLS: --tls-cert/--tls-key with a test CA made by openssl; skopeo and containerd trust the CA; SIGHUP reloads the cert.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { startContainerd, type Containerd } from '../helpers/containerd.ts';
import { pushImage } from '../helpers/images.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { skopeo } from '../helpers/skopeo.ts';
import { startStevedore, type StevedoreProcess } from '../helpers/stevedore.ts';
import { makeTempDir, waitFor, type TempDir } from '../helpers/tmp.ts';

const openssl = (args: string[], cwd: string): void => void execFileSync('openssl', args, { cwd, stdio: 'pipe' });

/** A CA, and two server certificates for 127.0.0.1 signed by it (the second for the reload). */
function makeCerts(dir: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=stevedore test CA',
    ],
    dir,
  );
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  for (const n of ['one', 'two']) {
    openssl(
      ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=stevedore ${n}`],
      dir,
    );
    openssl(
      ['x509', '-req', '-in', `${n}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${n}.crt`, '-days', '2', '-extfile', 'san.ext'],
      dir,
    );
  }
}

/** The CN of the certificate the server presents on a new connection. */
function servedCn(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(String(Array.isArray(cn) ? cn[0] : cn));
    });
    s.once('error', reject);
  });
}

describe('TLS (--tls-cert, --tls-key)', () => {
  let tmp: TempDir;
  let reg: Registry;
  let ctd: Containerd;
  let sd: StevedoreProcess;
  let ca: string;

  before(async () => {
    tmp = makeTempDir('stevedore-tls-');
    makeCerts(tmp.path);
    ca = readFileSync(path.join(tmp.path, 'ca.crt'), 'utf8');
    copyFileSync(path.join(tmp.path, 'one.crt'), path.join(tmp.path, 'server.crt'));
    copyFileSync(path.join(tmp.path, 'one.key'), path.join(tmp.path, 'server.key'));
    [reg, ctd] = await Promise.all([startRegistry(), startContainerd()]);
    await pushImage(reg.url, 'tls/app', 'v1', { layers: [{ seed: 501, sizeBytes: 7_000 }], mediaTypes: 'oci' });
    sd = await startStevedore({
      upstreams: [reg.url],
      extraArgs: ['--tls-cert', path.join(tmp.path, 'server.crt'), '--tls-key', path.join(tmp.path, 'server.key')],
      tlsCa: ca,
    });
  });
  after(async () => {
    await sd?.stop();
    await Promise.allSettled([reg?.destroy(), ctd?.stop()]);
    await tmp?.cleanup();
  });

  test('skopeo pulls over TLS trusting the test CA, and refuses without it', async () => {
    const certDir = path.join(tmp.path, 'skopeo-certs');
    mkdirSync(certDir);
    copyFileSync(path.join(tmp.path, 'ca.crt'), path.join(certDir, 'ca.crt'));
    const ref = `docker://${sd.host}/tls/app:v1`;
    const untrusted = await skopeo(['copy', ref, `oci:${path.join(tmp.path, 'sk-no')}:latest`]);
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.stderr, /certificate|x509/i);
    const ok = await skopeo(['copy', '--src-cert-dir', certDir, ref, `oci:${path.join(tmp.path, 'sk-ok')}:latest`]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('containerd pulls over TLS with the CA in hosts.toml', async () => {
    const hosts = path.join(tmp.path, 'hosts', sd.host);
    mkdirSync(hosts, { recursive: true });
    writeFileSync(
      path.join(hosts, 'hosts.toml'),
      `server = "https://${sd.host}"\n\n[host."https://${sd.host}"]\n  capabilities = ["pull", "resolve"]\n  ca = ${JSON.stringify(path.join(tmp.path, 'ca.crt'))}\n`,
    );
    const r = await ctd.pull(`${sd.host}/tls/app:v1`, { hostsDir: path.join(tmp.path, 'hosts') });
    assert.equal(r.code, 0, r.stderr);
  });

  test('SIGHUP reloads the certificate and key: new connections get the new one', async () => {
    assert.equal(await servedCn(sd.port, ca), 'stevedore one');
    copyFileSync(path.join(tmp.path, 'two.crt'), path.join(tmp.path, 'server.crt'));
    copyFileSync(path.join(tmp.path, 'two.key'), path.join(tmp.path, 'server.key'));
    process.kill(sd.pid, 'SIGHUP');
    await waitFor('the reloaded certificate', async () => (await servedCn(sd.port, ca)) === 'stevedore two' || undefined, 10_000, 50);
    // The log line is written just after the new context is set: a client may see the new certificate first.
    await waitFor('the reload log line', async () => /TLS certificate reloaded/.test(sd.logs()) || undefined, 10_000, 20);
  });
});
