// Operator commands on a data dir (also while serve runs on it): gc, du, verify, pin, unpin, pins.
import type { Command } from 'commander';
import type { Stevedore } from '../app.js';
import type { ConfigFlags } from '../config/load.js';
import { walkImage } from '../jobs/dag.js';
import { parseImageRef } from '../oci/reference.js';
import { verifyStore } from '../store/reconcile.js';
import { humanBytes } from './format.js';
import { build, common, runCommand } from './run.js';

/** Resolves a ref through the cache (fetching what is missing), with every child manifest of an index. */
async function resolveDag(s: Stevedore, ref: string) {
  const { name, reference } = parseImageRef(ref);
  const target = s.proxy.resolve(name, undefined);
  const dag = await walkImage(s.proxy.manifests, target, reference, { compression: 'any' });
  return { target, reference, root: dag.root };
}

export function registerOpsCommands(program: Command): void {
  common(program.command('gc').description('run the eviction sweep now (needs --max-size or --min-free-disk)'))
    .option('--dry-run', 'print what would be evicted; change nothing')
    .action(async (flags: ConfigFlags & { dryRun?: boolean }) => {
      await runCommand('gc', build(flags), async (s) => {
        const r = await s.eviction.sweep({ dryRun: flags.dryRun });
        const verb = flags.dryRun ? 'would free' : 'freed';
        for (const e of r.evicted) console.log(`${flags.dryRun ? 'would evict' : 'evicted'} ${e.kind} ${e.digest} ${humanBytes(e.size)}`);
        console.log(
          `${verb} ${humanBytes(r.freedBytes)} of ${humanBytes(Math.max(r.needed, 0))} needed (${r.evicted.length} objects)${r.short ? '; budget not met: the rest is pinned or in use' : ''}`,
        );
      });
    });
  common(program.command('du').description('print storage usage, by upstream and repository')).action(async (flags: ConfigFlags) => {
    await runCommand('du', build(flags), async (s) => {
      const t = s.usage.totals();
      const partials = await s.store.partials();
      const partialBytes = partials.reduce((n, p) => n + p.size, 0);
      console.log(
        `total ${humanBytes(t.blobBytes + t.manifestBytes + partialBytes)}: ${t.blobs} blobs (${humanBytes(t.blobBytes)}), ${t.manifests} manifests (${humanBytes(t.manifestBytes)}), ${partials.length} partial downloads (${humanBytes(partialBytes)})`,
      );
      for (const r of s.usage.byRepository()) console.log(`${humanBytes(r.bytes).padStart(12)}  ${String(r.blobs).padStart(6)} blobs  ${r.upstream}/${r.repo}`);
    });
  });
  common(program.command('verify').description('re-hash every cached blob; report (and with --repair remove) corrupt ones'))
    .option('--repair', 'remove corrupt blobs so they are fetched again')
    .action(async (flags: ConfigFlags & { repair?: boolean }) => {
      await runCommand('verify', build(flags), async (s) => {
        const r = await verifyStore(s.store, s.meta, { repair: !!flags.repair });
        for (const c of r.corrupt) console.log(`corrupt ${c.digest} (content hashes to ${c.got})${flags.repair ? ': removed' : ''}`);
        console.log(`checked ${r.checked} blobs, ${humanBytes(r.bytes)}: ${r.corrupt.length} corrupt`);
        return r.corrupt.length > 0 && !flags.repair ? 1 : 0;
      });
    });
  common(
    program
      .command('pin')
      .argument('<ref...>', 'e.g. docker.io/library/alpine:3.20 or ghcr.io/org/app@sha256:...')
      .description('keep an image (its whole DAG) out of eviction'),
  ).action(async (refs: string[], flags: ConfigFlags) => {
    await runCommand('pin', build(flags), async (s) => {
      for (const ref of refs) {
        const { target, reference, root } = await resolveDag(s, ref);
        const refText = reference.kind === 'tag' ? reference.tag : reference.digest;
        s.usage.pin({ upstream: target.upstream.name, repo: target.repo, reference: refText, digest: root.digest }, Date.now());
        console.log(`pinned ${target.upstream.name}/${target.repo}:${refText} -> ${root.digest}`);
      }
    });
  });
  common(program.command('unpin').argument('<ref...>').description('let an image be evicted again')).action(async (refs: string[], flags: ConfigFlags) => {
    await runCommand('unpin', build(flags), (s) => {
      let missing = 0;
      for (const ref of refs) {
        const { name, reference } = parseImageRef(ref);
        const target = s.proxy.resolve(name, undefined);
        const refText = reference.kind === 'tag' ? reference.tag : reference.digest;
        const ok = s.usage.unpin(target.upstream.name, target.repo, refText);
        console.log(`${ok ? 'unpinned' : 'not pinned:'} ${target.upstream.name}/${target.repo}:${refText}`);
        if (!ok) missing++;
      }
      return missing > 0 ? 1 : 0;
    });
  });
  common(program.command('pins').description('list pinned images')).action(async (flags: ConfigFlags) => {
    await runCommand('pins', build(flags), (s) => {
      for (const p of s.usage.pins()) console.log(`${p.upstream}/${p.repo}:${p.reference} ${p.digest} ${new Date(p.createdAt).toISOString()}`);
    });
  });
}
