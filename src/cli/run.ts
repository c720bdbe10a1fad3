// The one way a CLI command runs: the flags each kind of command takes, the config (exit 2 on a bad key), the app
// over the data dir, and every failure as one line on stderr with an exit code (2 usage or config, 1 anything else).
import { type Command, Option } from 'commander';
import { buildApp, type Stevedore } from '../app.js';
import { ConfigError, loadConfig, type Config, type ConfigFlags } from '../config/load.js';
import { InvalidMirrorError } from '../foreign/ops.js';
import { ExportError } from '../jobs/bundle/export.js';
import { ImportError } from '../jobs/bundle/import.js';
import { createLogger } from '../obs/log.js';
import { OciError } from '../oci/errors.js';
import { parseImageRef } from '../oci/reference.js';
import { StorePaths } from '../store/paths.js';
import { existsSync } from 'node:fs';

/** Bad command-line input: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A failure whose message says it all (what, why, what to do): one line, exit code 1. */
export class CommandError extends Error {
  override name = 'CommandError';
}

/** Turns the command's flags into a validated Config (exits 2 with one line on a bad key). */
export type Build = (flags: ConfigFlags) => Config;

/** The flags every command takes: where the data dir and config are, and how it logs (each with a STEVEDORE_* env twin). */
export function dataDirFlags(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (env STEVEDORE_CONFIG)')
    .option('--data <dir>', 'data directory: blobs + metadata.db (env STEVEDORE_DATA)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env STEVEDORE_LOG_LEVEL)')
    .option('--log-format <format>', 'json|pretty|auto: pretty lines on a terminal, JSON otherwise (default auto; env STEVEDORE_LOG_FORMAT)');
}

/** Commands that name images also take the upstreams those names resolve to. */
export function upstreamFlags(cmd: Command): Command {
  return dataDirFlags(cmd).addOption(
    new Option(
      '--upstream <url|name=url>',
      'add an upstream; a bare URL also becomes the default (repeatable; env STEVEDORE_UPSTREAM, comma-separated)',
    ).argParser((v: string, prev: string[] = []) => [...prev, v]),
  );
}

/** The storage budget (serve's sweep, gc). */
export function budgetFlags(cmd: Command): Command {
  return cmd
    .option('--max-size <bytes>', 'storage budget, e.g. 200GB or 50GiB; least recently used content is evicted (env STEVEDORE_MAX_SIZE)')
    .option('--min-free-disk <bytes>', 'evict until the data file system has this much free (env STEVEDORE_MIN_FREE_DISK)');
}

/** Every server flag: they mirror the config keys (serve and check-config). */
export function serveFlags(cmd: Command): Command {
  return budgetFlags(upstreamFlags(cmd))
    .option('--listen <host:port>', 'address to listen on (env STEVEDORE_LISTEN)')
    .option('--tag-ttl <seconds>', 'how long a tag is fresh before it is revalidated (env STEVEDORE_TAG_TTL)')
    .option('--offline', 'air-gapped: never contact an upstream; serve only what is cached (env STEVEDORE_OFFLINE=1)')
    .option('--upstream-rate <rate>', 'limit bytes per second fetched from all upstreams together, e.g. 20MB/s (env STEVEDORE_UPSTREAM_RATE)')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); re-read on SIGHUP (env STEVEDORE_TLS_CERT)')
    .option('--tls-key <file>', 'the PEM private key for --tls-cert; re-read on SIGHUP (env STEVEDORE_TLS_KEY)')
    .option('--workers <n>', 'processes serving the port and sharing the data dir (default: one per CPU; env STEVEDORE_WORKERS)');
}

/** An image ref given on the command line; an invalid one is a usage error: one line, exit 2. */
export function imageRef(what: string, ref: string): ReturnType<typeof parseImageRef> {
  try {
    return parseImageRef(ref);
  } catch (e) {
    return fail(what, new UsageError(`${what}: ${(e as Error).message}: expected [host[:port]/]repo[:tag|@digest], e.g. docker.io/library/alpine:3.20`));
  }
}

/** The validated config, or one line and exit code 2. */
export const build: Build = (flags) => {
  try {
    return loadConfig(flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`stevedore: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
};

/** One line for any failure; ours name what failed already, anything else gets the command's name. */
function report(what: string, e: unknown): number {
  const usage = e instanceof UsageError || e instanceof InvalidMirrorError || e instanceof ConfigError;
  if (e instanceof OciError) {
    process.stderr.write(`stevedore: ${e.code}: ${e.message}${e.detail ? ` ${JSON.stringify(e.detail)}` : ''}\n`);
  } else {
    const known = usage || e instanceof CommandError || e instanceof ExportError || e instanceof ImportError || e instanceof ConfigError;
    // One line: the first line of the message, never a stack (STEVEDORE_DEBUG=1 adds it for a bug report).
    const message = String((e as Error)?.message ?? e).split('\n')[0];
    process.stderr.write(`stevedore: ${known || !what ? '' : `${what} failed: `}${message}\n`);
    if (process.env.STEVEDORE_DEBUG && (e as Error)?.stack) process.stderr.write(`${(e as Error).stack}\n`);
  }
  return usage ? 2 : 1;
}

/**
 * Runs fn on an app built over the data dir and closes it. fn's return value is the exit code (default 0).
 * Until fn settles the exit code is 1: should anything leave a promise unsettled, node exits when its loop is
 * empty, and that must not read as success.
 */
export async function runCommand(
  what: string,
  config: Config,
  fn: (s: Stevedore) => Promise<number | void> | number | void,
  opts: { existing?: boolean } = {},
): Promise<void> {
  // A command that only reads (or trims) a store must not create an empty one where there is none: a typo in
  // --data would otherwise print "total 0 B" as if all were well.
  if (opts.existing && !existsSync(new StorePaths(config.data).db)) {
    process.stderr.write(`stevedore: ${what}: no stevedore data dir at ${config.data} (no metadata.db); give --data DIR or STEVEDORE_DATA\n`);
    process.exitCode = 1;
    return;
  }
  const s = buildApp(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, process.stderr, config.logFormat));
  process.exitCode = 1;
  try {
    process.exitCode = (await fn(s)) ?? 0;
  } catch (e) {
    process.exitCode = report(what, e);
  } finally {
    await s.close();
  }
}

/** Whatever escaped a command (main.ts): one line and its exit code, never a stack trace. */
export function exitOnFailure(e: unknown): never {
  process.exit(report('', e));
}

/** A failure before the app exists (bad arguments): one line and its exit code. */
export function fail(what: string, e: unknown): never {
  process.exit(report(what, e));
}
