#!/usr/bin/env node
// Entry point: run the CLI; anything that escapes a command is one line and a non-zero exit (cli/run.ts).
import { runCli } from './cli/index.js';
import { exitOnFailure } from './cli/run.js';

runCli(process.argv).catch(exitOnFailure);
