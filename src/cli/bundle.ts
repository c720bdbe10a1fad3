// `stevedore export` and `stevedore import`: move cached images to an air-gapped site as an OCI image layout archive.
import { Option, type Command } from 'commander';
import { exportBundle } from '../jobs/bundle/export.js';
import { importBundle } from '../jobs/bundle/import.js';
import { parseFullRef } from '../jobs/bundle/layout.js';
import { parsePlatform, type Compression, type Platform } from '../oci/platform.js';
import { parseImageRef } from '../oci/reference.js';
import type { ConfigFlags } from '../config/load.js';
import { OciError } from '../oci/errors.js';
import { humanBytes } from './format.js';
import { build, runCommand, upstreamFlags, UsageError } from './run.js';

type ExportFlags = ConfigFlags & { output: string; platform?: string[]; compression: Compression; referrers?: boolean };
type ImportFlags = ConfigFlags & { name?: string };

const out = (s: string): void => void process.stdout.write(`${s}\n`);

export function registerBundleCommands(program: Command): void {
  upstreamFlags(
    program
      .command('export')
      .argument('<ref...>', 'images, e.g. docker.io/library/alpine:3.20 or ghcr.io/org/app@sha256:...')
      .description('write cached images (fetched first unless --offline) to an OCI image layout archive, byte for byte'),
  )
    .option('--offline', 'export only what is cached; fetch nothing (env STEVEDORE_OFFLINE=1)')
    .requiredOption('-o, --output <file>', 'the archive to write (a tar; readable as oci-archive: by skopeo)')
    .addOption(
      new Option('--platform <os/arch[/variant]>', 'only these platforms of multi-platform images (repeatable; default: all)').argParser(
        (v: string, prev: string[] = []) => [...prev, v],
      ),
    )
    .addOption(
      new Option('--compression <kind>', 'which variant of an index entry to take when an image offers gzip and zstd')
        .choices(['any', 'gzip', 'zstd'])
        .default('any'),
    )
    .option('--referrers', "also carry the referrers of each image's manifests (signatures, SBOMs), each list as its sha256-<hex> tag")
    .action((refs: string[], flags: ExportFlags) => {
      const config = build(flags);
      return runCommand('export', config, async (s) => {
        let platforms: Platform[] | undefined;
        let images;
        try {
          platforms = flags.platform?.map(parsePlatform);
          images = refs.map((ref) => {
            const { name, reference } = parseImageRef(ref);
            return { target: s.proxy.resolve(name, undefined), reference };
          });
        } catch (e) {
          throw e instanceof OciError ? e : new UsageError((e as Error).message);
        }
        const info = await exportBundle(s, {
          images,
          out: flags.output,
          offline: config.offline,
          referrers: flags.referrers === true,
          selection: { compression: flags.compression, ...(platforms ? { platforms } : {}) },
        });
        for (const i of info.images) {
          const foreign = i.foreignNotIncluded.length > 0 ? `; ${i.foreignNotIncluded.length} foreign layer(s) not cached, not included` : '';
          out(
            `${i.ref} ${i.digest} [${i.platforms.join(', ') || 'no platform'}]: ${i.manifests} manifests, ${i.blobs} blobs, ${humanBytes(i.bytes)}${foreign}`,
          );
        }
        const t = info.totals;
        out(`wrote ${flags.output}: ${t.images} images, ${t.manifests} manifests, ${t.blobs} blobs, ${humanBytes(t.bytes)}`);
      });
    });

  upstreamFlags(
    program
      .command('import')
      .argument('<bundle>', 'an OCI image layout archive: from stevedore export, or skopeo copy ... oci-archive:FILE[:NAME]')
      .description('verify an archive, then make its images servable (also by an --offline instance) in one step'),
  )
    .option('--name <host/repo[:tag]>', "where images go whose ref name has no registry host (e.g. skopeo's oci-archive:FILE:TAG)")
    .action((file: string, flags: ImportFlags) =>
      runCommand('import', build(flags), async (s) => {
        const name = flags.name !== undefined ? parseFullRef(flags.name) : undefined;
        if (flags.name !== undefined && (!name || name.digest))
          throw new UsageError(`--name ${flags.name}: expected host/repo[:tag], e.g. docker.io/library/alpine:3.20`);
        const r = await importBundle(
          {
            store: s.store,
            meta: s.meta,
            resolve: (n) => s.proxy.resolve(n, undefined),
            onManifest: (target, digest, parsed) => s.foreign.onManifest(target, digest, parsed),
          },
          { file, ...(name ? { name } : {}) },
        );
        if (r.bundle?.stevedore) out(`bundle made by stevedore ${r.bundle.stevedore} at ${r.bundle.created}`);
        for (const i of r.images) out(`${i.ref} ${i.digest}`);
        if (r.foreignNotIncluded.length > 0)
          out(`${r.foreignNotIncluded.length} foreign layer(s) referenced but not in the bundle (served per the foreign rules)`);
        if (r.manifestsNotIncluded.length > 0) out(`${r.manifestsNotIncluded.length} platform manifest(s) of an index not in the bundle`);
        const nothing = r.manifests.added === 0 && r.blobs.added === 0 && r.tags.changed === 0;
        out(
          `imported ${r.images.length} images: ${r.manifests.added} of ${r.manifests.total} manifests new, ${r.blobs.added} of ${r.blobs.total} blobs new (${humanBytes(r.blobs.addedBytes)}), ${r.tags.changed} tags set${nothing ? ' (nothing new: already imported)' : ''}`,
        );
      }),
    );
}
