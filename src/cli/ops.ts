// Operator commands on a data dir (also while serve runs on it): gc, du, verify, pin, unpin, pins.
import type { Command } from 'commander';
import type { Stevedore } from '../app.js';
import type { ConfigFlags } from '../config/load.js';
import { parseManifest } from '../oci/manifest.js';
import { isIndexType } from '../oci/media-types.js';
import type { Digest } from '../oci/digest.js';
import type { Reference } from '../oci/reference.js';
import { verifyStore } from '../store/reconcile.js';
import { humanBytes } from './format.js';
import { budgetFlags, build, CommandError, dataDirFlags, imageRef, runCommand, upstreamFlags } from './run.js';

/**
 * The root digest of a cached image, checked locally (nothing is fetched): the tag's mapping, the root manifest
 * and every layer of each image manifest that is stored. Of an index, the platforms that were never pulled are
 * not needed (a pin keeps what is cached), but at least one must be complete.
 */
function cachedRoot(s: Stevedore, ref: string, upstream: string, repo: string, reference: Reference): { digest: Digest; platforms?: string } {
  const notCached = (what: string): never => {
    throw new CommandError(`${ref} is not cached (${what}); fetch and pin it with: stevedore prefetch --pin ${ref}`);
  };
  const root = reference.kind === 'digest' ? reference.digest : (s.meta.getTag(upstream, repo, reference.tag)?.digest ?? notCached('tag unknown here'));
  const rootRow = s.meta.getManifest(root) ?? notCached(`manifest ${root} missing`);
  const complete = (m: { body: Buffer; mediaType: string }): void => {
    for (const d of parseManifest(m.body, m.mediaType).descriptors)
      if (d.kind === 'blob' && !d.subject && !d.foreign && s.meta.blobSize(d.digest) === undefined) notCached(`blob ${d.digest} missing`);
  };
  if (!isIndexType(rootRow.mediaType)) {
    complete(rootRow);
    return { digest: root };
  }
  const entries = parseManifest(rootRow.body, rootRow.mediaType).descriptors.filter((d) => d.kind === 'manifest' && !d.subject && d.platform?.os !== 'unknown');
  let cached = 0;
  for (const e of entries) {
    const child = s.meta.getManifest(e.digest);
    if (!child) continue;
    complete(child);
    cached++;
  }
  if (cached === 0) notCached('no platform of the index is cached');
  return { digest: root, platforms: `${cached} of ${entries.length} platforms cached` };
}

export function registerOpsCommands(program: Command): void {
  budgetFlags(dataDirFlags(program.command('gc').description('run the eviction sweep now, against the configured budget (maxSize / minFreeDisk)')))
    .option('--dry-run', 'print what would be evicted; change nothing')
    .action(async (flags: ConfigFlags & { dryRun?: boolean }) => {
      const config = build(flags);
      await runCommand(
        'gc',
        config,
        async (s) => {
          if (config.maxSize === undefined && config.minFreeDisk === undefined) {
            console.log('no storage budget set (maxSize or minFreeDisk in the config, --max-size, --min-free-disk): nothing to evict');
            return 0;
          }
          const budget = [
            config.maxSize !== undefined ? `maxSize ${humanBytes(config.maxSize)}` : '',
            config.minFreeDisk !== undefined ? `minFreeDisk ${humanBytes(config.minFreeDisk)}` : '',
          ].filter(Boolean);
          const r = await s.eviction.sweep({ dryRun: flags.dryRun });
          const verb = flags.dryRun ? 'would free' : 'freed';
          for (const e of r.evicted)
            console.log(`${flags.dryRun ? 'would evict' : 'evicted'} ${e.kind} ${e.digest} ${humanBytes(e.size)}  ${e.names.join(', ') || '(no name)'}`);
          console.log(
            `${verb} ${humanBytes(r.freedBytes)} of ${humanBytes(Math.max(r.needed, 0))} needed (${r.evicted.length} objects; budget ${budget.join(', ')})${r.short ? '; budget not met: the rest is pinned or in use' : ''}`,
          );
        },
        { existing: true },
      );
    });
  dataDirFlags(program.command('du').description('print storage usage, by upstream and repository'))
    .option('--json', 'print JSON')
    .action(async (flags: ConfigFlags & { json?: boolean }) => {
      await runCommand(
        'du',
        build(flags),
        async (s) => {
          const t = s.usage.totals();
          const repos = s.usage.byRepository();
          const partials = await s.store.partials();
          const partialBytes = partials.reduce((n, p) => n + p.size, 0);
          const total = t.blobBytes + t.manifestBytes + partialBytes;
          if (flags.json) {
            console.log(JSON.stringify({ totalBytes: total, ...t, partials: { count: partials.length, bytes: partialBytes }, repositories: repos }, null, 2));
            return;
          }
          console.log(
            `total ${humanBytes(total)}: ${t.blobs} blobs (${humanBytes(t.blobBytes)}), ${t.manifests} manifests (${humanBytes(t.manifestBytes)}), ${partials.length} partial downloads (${humanBytes(partialBytes)})`,
          );
          for (const r of repos) console.log(`${humanBytes(r.bytes).padStart(12)}  ${String(r.blobs).padStart(6)} blobs  ${r.upstream}/${r.repo}`);
        },
        { existing: true },
      );
    });
  dataDirFlags(program.command('verify').description('re-hash every cached blob; report (and with --repair remove) corrupt ones'))
    .option('--repair', 'remove corrupt blobs so they are fetched again')
    .action(async (flags: ConfigFlags & { repair?: boolean }) => {
      await runCommand(
        'verify',
        build(flags),
        async (s) => {
          const r = await verifyStore(s.store, s.meta, { repair: !!flags.repair });
          for (const c of r.corrupt) console.log(`corrupt ${c.digest} (content hashes to ${c.got})${flags.repair ? ': removed' : ''}`);
          console.log(`checked ${r.checked} blobs, ${humanBytes(r.bytes)}: ${r.corrupt.length} corrupt`);
          return r.corrupt.length > 0 && !flags.repair ? 1 : 0;
        },
        { existing: true },
      );
    });
  upstreamFlags(
    program
      .command('pin')
      .argument('<ref...>', 'e.g. docker.io/library/alpine:3.20 or ghcr.io/org/app@sha256:...')
      .description('keep a cached image (its whole DAG) out of eviction; an image not cached yet: stevedore prefetch --pin REF'),
  ).action(async (refs: string[], flags: ConfigFlags) => {
    const parsed = refs.map((ref) => ({ ref, ...imageRef('pin', ref) }));
    await runCommand(
      'pin',
      build(flags),
      (s) => {
        // Check every ref before pinning any: a refused ref pins nothing.
        const pins = parsed.map(({ ref, name, reference }) => {
          const target = s.proxy.resolve(name, undefined);
          const { digest, platforms } = cachedRoot(s, ref, target.upstream.name, target.repo, reference);
          return {
            upstream: target.upstream.name,
            repo: target.repo,
            reference: reference.kind === 'tag' ? reference.tag : reference.digest,
            digest,
            platforms,
          };
        });
        for (const { platforms, ...p } of pins) {
          s.usage.pin(p, Date.now());
          console.log(`pinned ${p.upstream}/${p.repo}:${p.reference} -> ${p.digest}${platforms ? ` (${platforms})` : ''}`);
        }
      },
      { existing: true },
    );
  });
  upstreamFlags(program.command('unpin').argument('<ref...>').description('let an image be evicted again')).action(
    async (refs: string[], flags: ConfigFlags) => {
      const parsed = refs.map((ref) => imageRef('unpin', ref));
      await runCommand(
        'unpin',
        build(flags),
        (s) => {
          let missing = 0;
          for (const { name, reference } of parsed) {
            const target = s.proxy.resolve(name, undefined);
            const refText = reference.kind === 'tag' ? reference.tag : reference.digest;
            const ok = s.usage.unpin(target.upstream.name, target.repo, refText);
            console.log(`${ok ? 'unpinned' : 'not pinned:'} ${target.upstream.name}/${target.repo}:${refText}`);
            if (!ok) missing++;
          }
          return missing > 0 ? 1 : 0;
        },
        { existing: true },
      );
    },
  );
  dataDirFlags(program.command('pins').description('list pinned images'))
    .option('--json', 'print JSON')
    .action(async (flags: ConfigFlags & { json?: boolean }) => {
      await runCommand(
        'pins',
        build(flags),
        (s) => {
          const pins = s.usage.pins();
          if (flags.json) console.log(JSON.stringify(pins, null, 2));
          else if (pins.length === 0) console.log('no pinned images (pin one with: stevedore pin REF, or stevedore prefetch --pin REF)');
          for (const p of flags.json ? [] : pins) console.log(`${p.upstream}/${p.repo}:${p.reference} ${p.digest} ${new Date(p.createdAt).toISOString()}`);
        },
        { existing: true },
      );
    });
}
