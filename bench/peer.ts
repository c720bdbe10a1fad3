// The peer users would pick instead: the CNCF distribution registry in proxy mode (`docker-registry serve` with
// `proxy: remoteurl:`), on 127.0.0.1 with its own temp storage, in front of the same upstream as stevedore.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import YAML from 'yaml';
import { freePort, makeTempDir, spawnTracked, stopProcess, waitFor } from '../test/helpers/tmp.ts';
import type { Server } from './servers.ts';

const BINARY = process.env.STEVEDORE_REGISTRY_BIN ?? 'docker-registry';

export async function startPeer(upstreamUrl: string): Promise<Server> {
  const tmp = makeTempDir('stevedore-bench-peer-');
  const port = await freePort();
  const storage = path.join(tmp.path, 'data');
  mkdirSync(storage);
  const conf = path.join(tmp.path, 'config.yml');
  writeFileSync(
    conf,
    YAML.stringify({
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true } },
      http: { addr: `127.0.0.1:${port}`, secret: 'stevedore-bench-peer' },
      proxy: { remoteurl: upstreamUrl },
    }),
  );
  const child = spawnTracked(BINARY, ['serve', conf]);
  let out = '';
  const add = (d: Buffer): void => {
    if (out.length < 1_000_000) out += d.toString();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    await tmp.cleanup();
  };
  try {
    await waitFor(
      'distribution proxy /v2/',
      async () => {
        if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}: ${out}`);
        const res = await request(`${url}/v2/`, { headersTimeout: 1_000, bodyTimeout: 1_000 }).catch(() => undefined);
        await res?.body.dump();
        return res?.statusCode === 200;
      },
      15_000,
      50,
    );
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, pid: child.pid!, logs: () => out, stop };
}
