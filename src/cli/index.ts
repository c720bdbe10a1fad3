// Commands: serve | check-config. Flags mirror the config keys; every flag has a STEVEDORE_* env twin.
import { Command } from 'commander';
import type { ConfigFlags } from '../config/load.js';
import { registerOpsCommands } from './ops.js';
import { registerForeignCommands } from './foreign.js';
import { registerPrefetchCommand } from './prefetch.js';
import { registerBundleCommands } from './bundle.js';
import { build, common } from './run.js';
import { serve } from './serve.js';

export async function runCli(argv: string[]): Promise<void> {
  const program = new Command('stevedore').description('caching pull-through proxy for OCI / Docker registries').showHelpAfterError();
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  common(program.command('serve').description('run the registry mirror'))
    .option('--workers <n>', 'processes serving the port and sharing the data dir (default: one per CPU; env STEVEDORE_WORKERS)')
    .action(async (flags: ConfigFlags) => {
      await serve(build(flags));
    });
  common(program.command('check-config').description('validate the configuration and print it (secrets redacted)')).action((flags: ConfigFlags) => {
    const config = build(flags);
    const upstreams = Object.fromEntries(
      Object.values(config.upstreams).map((u) => [
        u.name,
        u.endpoints
          ? {
              endpoints: u.endpoints.map((e) => ({
                url: e.url,
                mirror: e.mirror,
                credentials: e.credentials ? '[redacted]' : undefined,
                realms: e.realms,
                allowPrivate: e.allowPrivate,
              })),
            }
          : {
              url: u.url,
              credentials: u.credentials ? '[redacted]' : undefined,
              clientCredentials: u.passthrough ? 'passthrough' : undefined,
              realms: u.realms,
              allowPrivate: u.allowPrivate,
            },
      ]),
    );
    const { clientAuth, ...rest } = config;
    // Names only: the hashes and tokens never leave the process.
    const auth = clientAuth && {
      ...config.auth,
      users: [...clientAuth.users.keys()],
      tokens: [...clientAuth.tokens.values()].map((name) => ({ name, token: '[redacted]' })),
    };
    process.stdout.write(`${JSON.stringify({ ...rest, upstreams, auth, adminToken: config.adminToken ? '[redacted]' : undefined }, null, 2)}\n`);
  });
  registerOpsCommands(program);
  registerForeignCommands(program);
  registerPrefetchCommand(program);
  registerBundleCommands(program);
  await program.parseAsync(argv);
}
