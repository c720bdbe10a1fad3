// Thin wrappers that run skopeo (always with --insecure-policy) against loopback registries.
import { runCommand, type RunResult } from './tmp.ts';

const BINARY = process.env.STEVEDORE_SKOPEO_BIN ?? 'skopeo';

/** Run `skopeo --insecure-policy ARGS`; never rejects on a non-zero exit (check .code). */
export function skopeo(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return runCommand(BINARY, ['--insecure-policy', ...args], { timeoutMs });
}

/** Throw with skopeo's stderr unless it exited 0. */
function check(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(`skopeo ${what} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
}

/**
 * Copy `src` (e.g. docker://127.0.0.1:PORT/repo:tag) into an OCI layout directory `dir` (as oci:DIR:latest).
 * all: copy every platform of an index (--all). Resolves with the result even on failure; see copyToOciDirOrThrow.
 */
export function copyToOciDir(src: string, dir: string, opts: { all?: boolean; extraArgs?: string[]; timeoutMs?: number } = {}): Promise<RunResult> {
  const args = ['copy', '--src-tls-verify=false', ...(opts.all ? ['--all'] : []), ...(opts.extraArgs ?? []), src, `oci:${dir}:latest`];
  return skopeo(args, opts.timeoutMs);
}

export async function copyToOciDirOrThrow(
  src: string,
  dir: string,
  opts: { all?: boolean; extraArgs?: string[]; timeoutMs?: number } = {},
): Promise<RunResult> {
  return check(`copy ${src}`, await copyToOciDir(src, dir, opts));
}

/** Raw manifest bytes exactly as served (`skopeo inspect --raw --tls-verify=false REF`). */
export async function inspectRaw(ref: string, timeoutMs = 60_000): Promise<Buffer> {
  // runCommand decodes stdout as UTF-8; manifests are JSON (UTF-8), so re-encoding is lossless.
  const r = check(`inspect --raw ${ref}`, await skopeo(['inspect', '--raw', '--tls-verify=false', ref], timeoutMs));
  return Buffer.from(r.stdout, 'utf8');
}

/** Parsed `skopeo inspect` (config-level summary: Digest, Layers, Architecture, ...). */
export async function inspect(ref: string, extraArgs: string[] = [], timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const r = check(`inspect ${ref}`, await skopeo(['inspect', '--tls-verify=false', ...extraArgs, ref], timeoutMs));
  return JSON.parse(r.stdout) as Record<string, unknown>;
}
