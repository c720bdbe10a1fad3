#!/usr/bin/env node
// Entry point: run the CLI; an uncaught failure is one clear line and a non-zero exit.
import { runCli } from './cli/index.js';

runCli(process.argv).catch((e: unknown) => {
  process.stderr.write(`stevedore: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
