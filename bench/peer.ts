// The peer users would pick instead: the CNCF distribution registry in proxy mode (`docker-registry serve` with
// `proxy: remoteurl:`), on 127.0.0.1 with its own temp storage, in front of the same upstream as stevedore.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { startServerProcess } from '../test/helpers/server-process.ts';
import { freePort, makeTempDir } from '../test/helpers/tmp.ts';
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
  return startServerProcess({ what: 'distribution proxy /v2/', cmd: BINARY, args: ['serve', conf], url: `http://127.0.0.1:${port}`, probe: '/v2/', tmp });
}
