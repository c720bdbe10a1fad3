// Commands: serve | check-config, and the command groups. Flags mirror the config keys; every flag has a STEVEDORE_* env twin.
import { Command } from 'commander';
import type { ConfigFlags } from '../config/load.js';
import { configToYaml } from '../config/print.js';
import { stevedoreVersion } from '../jobs/bundle/layout.js';
import { registerOpsCommands } from './ops.js';
import { registerForeignCommands } from './foreign.js';
import { registerPrefetchCommand } from './prefetch.js';
import { registerBundleCommands } from './bundle.js';
import { registerHealthCommand } from './health.js';
import { build, serveFlags } from './run.js';
import { serve } from './serve.js';

export async function runCli(argv: string[]): Promise<void> {
  const program = new Command('stevedore')
    .description('caching pull-through proxy for OCI / Docker registries')
    .version(stevedoreVersion(), '-V, --version', 'print the version')
    .showHelpAfterError();
  program.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  serveFlags(program.command('serve').description('run the registry mirror')).action(async (flags: ConfigFlags) => {
    await serve(build(flags));
  });
  serveFlags(program.command('check-config').description('validate the configuration and print it as YAML, usable as --config FILE (secrets left out)')).action(
    (flags: ConfigFlags) => {
      process.stdout.write(configToYaml(build(flags)));
    },
  );
  registerOpsCommands(program);
  registerForeignCommands(program);
  registerPrefetchCommand(program);
  registerBundleCommands(program);
  registerHealthCommand(program);
  await program.parseAsync(argv);
}
