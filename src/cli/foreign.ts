// `stevedore foreign ...`: list, show, mirror add|remove, check, fetch, on a data dir (also while serve runs on it).
import type { Command } from 'commander';
import type { ConfigFlags } from '../config/load.js';
import { FOREIGN_STATUSES, isForeignStatus, type LayerView } from '../foreign/ops.js';
import { requireDigest } from '../oci/digest.js';
import type { ForeignLayerRow } from '../store/foreign.js';
import { build, dataDirFlags, runCommand, UsageError } from './run.js';

type Flags = ConfigFlags & { json?: boolean };

const out = (s: string): void => void process.stdout.write(`${s}\n`);

function row(r: ForeignLayerRow): string {
  return [r.digest, r.status.padEnd(12), String(r.size).padStart(12), r.foreign ? 'foreign' : 'urls   ', r.urls[0] ?? '-'].join('  ');
}

function showText(v: LayerView): string {
  const lines = [
    `digest      ${v.digest}`,
    `size        ${v.size}`,
    `media type  ${v.mediaType}${v.foreign ? '' : ' (ordinary layer with urls)'}`,
    `status      ${v.status}${v.lastError ? ` (${v.lastError})` : ''}`,
    `seen        ${new Date(v.firstSeen).toISOString()} .. ${new Date(v.lastSeen).toISOString()} in ${v.repos.map((r) => `${r.upstream}/${r.repo}`).join(', ')}`,
    'urls (in the order they are tried):',
  ];
  for (const c of v.candidates) {
    const h = c.health.failures > 0 ? `unhealthy: ${c.health.failures} failures, last: ${c.health.lastError}` : c.health.lastSuccess ? 'healthy' : 'untried';
    lines.push(`  ${c.action.padEnd(8)} ${c.url}  [${c.source}; ${c.reason ?? (c.rule >= 0 ? `rule ${c.rule}` : '')}; ${h}]`);
  }
  return lines.join('\n');
}

export function registerForeignCommands(program: Command): void {
  const foreign = program.command('foreign').description('foreign / non-distributable layers: recorded URLs, mirrors, health, pre-fill');
  dataDirFlags(foreign.command('list').description('list recorded foreign layers and layers with urls'))
    .option('--status <status>', 'only this status: unresolved|redirectable|fetchable|cached|unavailable|denied')
    .option('--json', 'print JSON')
    .action((flags: Flags & { status?: string }) =>
      runCommand(
        'foreign list',
        build(flags),
        ({ foreignAdmin }) => {
          const { status } = flags;
          if (status !== undefined && !isForeignStatus(status)) throw new UsageError(`unknown status "${status}"; one of ${FOREIGN_STATUSES.join(', ')}`);
          const rows = foreignAdmin.list(status);
          if (flags.json) out(JSON.stringify(rows, null, 2));
          else if (rows.length === 0) out(`no foreign layers or layers with urls recorded${status ? ` with status ${status}` : ''}`);
          else for (const r of rows) out(row(r));
        },
        { existing: true },
      ),
    );
  dataDirFlags(foreign.command('show').description('one layer: where it was seen, its URLs in the order they are tried, their health').argument('<digest>'))
    .option('--json', 'print JSON')
    .action((digest: string, flags: Flags) =>
      runCommand(
        'foreign show',
        build(flags),
        ({ foreignAdmin }) => {
          const v = foreignAdmin.show(requireDigest(digest));
          out(flags.json ? JSON.stringify(v, null, 2) : showText(v));
        },
        { existing: true },
      ),
    );
  const mirror = foreign.command('mirror').description('operator mirror URLs, kept beside (not in) the signed manifest');
  for (const verb of ['add', 'remove'] as const) {
    dataDirFlags(
      mirror
        .command(verb)
        .description(`${verb} mirror URLs for DIGEST, or with --prefix URL prefixes/templates ("https://m.example/{digest}") for every digest`)
        .argument('<digest-or-url>')
        .argument('[urls...]'),
    )
      .option('--prefix', 'the arguments are prefix/template URLs that serve every digest')
      .action((first: string, rest: string[], flags: Flags & { prefix?: boolean }) =>
        runCommand(`foreign mirror ${verb}`, build(flags), ({ foreignAdmin }) => {
          if (!flags.prefix && rest.length === 0) throw new UsageError(`mirror ${verb} needs DIGEST URL... or --prefix URL...`);
          const digest = flags.prefix ? '' : requireDigest(first);
          const urls = flags.prefix ? [first, ...rest] : rest;
          const changed = verb === 'add' ? foreignAdmin.addMirrors(digest, urls) : foreignAdmin.removeMirrors(digest, urls);
          for (const u of urls)
            out(`${changed.includes(u) ? (verb === 'add' ? 'added' : 'removed') : verb === 'add' ? 'already present' : 'not present'}  ${u}`);
        }),
      );
  }
  dataDirFlags(foreign.command('check').description('probe the allowed URLs (HEAD) of one layer or all; update URL health and status').argument('[digest]'))
    .option('--json', 'print JSON')
    .action((digest: string | undefined, flags: Flags) =>
      runCommand('foreign check', build(flags), async ({ foreignAdmin }) => {
        const results = await foreignAdmin.check(digest ? requireDigest(digest) : undefined);
        if (flags.json) out(JSON.stringify(results, null, 2));
        else {
          for (const r of results) {
            out(`${r.digest}  ${r.status}`);
            for (const u of r.urls) out(`  ${u.ok ? 'ok  ' : 'FAIL'}  ${u.action.padEnd(8)} ${u.url}${u.error ? `  (${u.error})` : ''}`);
          }
        }
        return results.some((r) => r.status === 'unavailable' || r.status === 'denied') ? 1 : 0;
      }),
    );
  dataDirFlags(foreign.command('fetch').description('download, verify and cache one layer now (pre-fill for air-gapped sites)').argument('<digest>'))
    .option('--json', 'print JSON')
    .action((digest: string, flags: Flags) =>
      runCommand('foreign fetch', build(flags), async ({ foreignAdmin }) => {
        const r = await foreignAdmin.prefetch(requireDigest(digest));
        out(flags.json ? JSON.stringify(r) : `cached ${r.digest} (${r.size} bytes)${r.url ? ` from ${r.url}` : ', already present'}`);
      }),
    );
}
