// `stevedore healthcheck`: probes the /healthz of the server this config describes (the container image's HEALTHCHECK).
import type { Command } from 'commander';
import type { ConfigFlags } from '../config/load.js';
import { build } from './run.js';

const TIMEOUT_MS = 4000;

/** Where a local client reaches a server listening on host: a wildcard address means loopback. */
export function probeUrl(host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}/healthz`;
}

export function registerHealthCommand(program: Command): void {
  program
    .command('healthcheck')
    .description('exit 0 when the server at the configured listen address answers /healthz (reads STEVEDORE_LISTEN / STEVEDORE_CONFIG like serve)')
    .option('-c, --config <file>', 'YAML config file (env STEVEDORE_CONFIG)')
    .option('--listen <host:port>', 'address the server listens on (env STEVEDORE_LISTEN)')
    .action(async (flags: ConfigFlags) => {
      const config = build(flags);
      const url = probeUrl(config.host, config.port);
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
        if (!res.ok) throw new Error(`answered ${res.status}`);
        await res.arrayBuffer();
      } catch (e) {
        process.stderr.write(`stevedore: healthcheck: ${url}: ${(e as Error).message}\n`);
        process.exit(1);
      }
    });
}
