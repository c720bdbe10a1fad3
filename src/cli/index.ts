// Commands: serve | check-config. Flags mirror the config keys; every flag has a STEVEDORE_* env twin.
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type ConfigFlags } from '../config/load.js';
import { registerOpsCommands } from './ops.js';
import { registerForeignCommands } from './foreign.js';
import { registerPrefetchCommand } from './prefetch.js';
import { registerBundleCommands } from './bundle.js';
import { serve } from './serve.js';

export function common(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (env STEVEDORE_CONFIG)')
    .option('--listen <host:port>', 'address to listen on (env STEVEDORE_LISTEN)', undefined)
    .option('--data <dir>', 'data directory: blobs + metadata.db (env STEVEDORE_DATA)')
    .addOption(new Option('--upstream <url|name=url>', 'add an upstream; a bare URL also becomes the default (repeatable; env STEVEDORE_UPSTREAM, comma-separated)').argParser((v: string, prev: string[] = []) => [...prev, v]))
    .option('--tag-ttl <seconds>', 'how long a tag is fresh before it is revalidated (env STEVEDORE_TAG_TTL)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env STEVEDORE_LOG_LEVEL)')
    .option('--offline', 'air-gapped: never contact an upstream; serve only what is cached (env STEVEDORE_OFFLINE=1)')
    .option('--max-size <bytes>', 'storage budget, e.g. 200GB or 50GiB; least recently used content is evicted (env STEVEDORE_MAX_SIZE)')
    .option('--min-free-disk <bytes>', 'evict until the data file system has this much free (env STEVEDORE_MIN_FREE_DISK)')
    .option('--upstream-rate <rate>', 'limit bytes per second fetched from all upstreams together, e.g. 20MB/s (env STEVEDORE_UPSTREAM_RATE)');
}

export function configOrExit(flags: ConfigFlags) {
  try {
    return loadConfig(flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`stevedore: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

export async function runCli(argv: string[]): Promise<void> {
  const program = new Command('stevedore').description('caching pull-through proxy for OCI / Docker registries').showHelpAfterError();
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  common(program.command('serve').description('run the registry mirror')).action(async (flags: ConfigFlags) => {
    await serve(configOrExit(flags));
  });
  common(program.command('check-config').description('validate the configuration and print it (secrets redacted)')).action((flags: ConfigFlags) => {
    const config = configOrExit(flags);
    const upstreams = Object.fromEntries(Object.values(config.upstreams).map((u) => [u.name, { url: u.url, credentials: u.credentials ? '[redacted]' : undefined }]));
    process.stdout.write(`${JSON.stringify({ ...config, upstreams, adminToken: config.adminToken ? '[redacted]' : undefined }, null, 2)}\n`);
  });
  registerOpsCommands(program, common, configOrExit);
  registerForeignCommands(program, common, configOrExit);
  registerPrefetchCommand(program, common, configOrExit);
  registerBundleCommands(program, common, configOrExit);
  await program.parseAsync(argv);
}
