// Platforms and index entry selection: which manifests of an index (platform, compression variant) an image pull wants.
import type { Descriptor } from './manifest.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}
export type Compression = 'gzip' | 'zstd' | 'any';
export interface Selection {
  /** undefined: every platform. */
  platforms?: Platform[];
  compression: Compression;
}

/** Parses os/arch[/variant], e.g. linux/arm64/v8. */
export function parsePlatform(value: string): Platform {
  const [os, architecture, variant, ...rest] = value.split('/');
  if (!os || !architecture || rest.length > 0) throw new Error(`invalid platform "${value}" (expected os/arch[/variant])`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

// arm64's variant is v8 when unstated (containerd's platform normalisation).
const normVariant = (p: { architecture?: string; variant?: string }) => p.variant ?? (p.architecture === 'arm64' ? 'v8' : undefined);

export function platformMatches(want: Platform, have: Descriptor['platform']): boolean {
  if (!have || have.os !== want.os || have.architecture !== want.architecture) return false;
  return want.variant === undefined || normVariant(want) === normVariant(have);
}

/** An index entry marked as the zstd variant (containerd's annotation, or platform.features). */
export function isZstdEntry(d: Descriptor): boolean {
  return d.annotations?.['io.containerd.image.compression'] === 'zstd' || (d.platform?.features ?? []).includes('zstd');
}

/** Picks index entries: per wanted platform, the variant of the wanted compression (falling back to the other). */
export function selectEntries(entries: Descriptor[], sel: Selection): Descriptor[] {
  const images = entries.filter((e) => e.kind === 'manifest' && !e.subject);
  // Attestations and other non-platform entries (platform unknown/unknown) are not images to pull.
  const real = images.filter((e) => e.platform?.os !== 'unknown');
  const groups = sel.platforms ? sel.platforms.map((p) => real.filter((e) => platformMatches(p, e.platform))) : groupByPlatform(real);
  const out: Descriptor[] = [];
  for (const g of groups) {
    if (sel.compression === 'any') out.push(...g);
    else {
      const preferred = g.filter((e) => isZstdEntry(e) === (sel.compression === 'zstd'));
      out.push(...(preferred.length > 0 ? preferred : g));
    }
  }
  return [...new Map(out.map((e) => [e.digest, e])).values()];
}

function groupByPlatform(entries: Descriptor[]): Descriptor[][] {
  const groups = new Map<string, Descriptor[]>();
  for (const e of entries) {
    const p = e.platform;
    const key = p ? `${p.os}/${p.architecture}/${normVariant(p) ?? ''}` : e.digest;
    groups.set(key, [...(groups.get(key) ?? []), e]);
  }
  return [...groups.values()];
}
