// Which upstream a request means: containerd's ?ns=, else a host-like first path component, else the default.
import type { Upstream } from './types.js';
import { OciError } from '../oci/errors.js';
import { isValidName, looksLikeHost } from '../oci/reference.js';

export interface Target {
  upstream: Upstream;
  /** The repository name as the upstream knows it (docker.io: library/ added). */
  repo: string;
}

// Names clients use for Docker Hub besides docker.io.
const ALIASES: Record<string, string> = { 'index.docker.io': 'docker.io', 'registry-1.docker.io': 'docker.io' };

export class Registries {
  constructor(
    private readonly upstreams: Readonly<Record<string, Upstream>>,
    private readonly defaultName: string,
  ) {}

  get(name: string): Upstream | undefined {
    return this.upstreams[ALIASES[name] ?? name];
  }

  list(): Upstream[] {
    return Object.values(this.upstreams);
  }

  /** Resolves the <name> of a /v2/<name>/... request. Throws NAME_INVALID or DENIED. */
  resolve(name: string, ns: string | undefined): Target {
    if (!isValidName(name) && !this.isHostPrefixed(name)) throw new OciError('NAME_INVALID', { name });
    let upstream: Upstream | undefined;
    let repo = name;
    if (ns !== undefined && ns !== '') {
      upstream = this.get(ns.toLowerCase());
      if (!upstream) throw this.denied(ns);
    } else {
      const slash = name.indexOf('/');
      const first = slash > 0 ? name.slice(0, slash) : '';
      if (first && looksLikeHost(first)) {
        upstream = this.get(first);
        if (!upstream) throw this.denied(first);
        repo = name.slice(slash + 1);
      } else {
        upstream = this.upstreams[this.defaultName]!;
      }
    }
    if (!isValidName(repo)) throw new OciError('NAME_INVALID', { name });
    if (upstream.libraryPrefix && !repo.includes('/')) repo = `library/${repo}`;
    return { upstream, repo };
  }

  private isHostPrefixed(name: string): boolean {
    const slash = name.indexOf('/');
    return slash > 0 && looksLikeHost(name.slice(0, slash)) && /^[a-z0-9.-]+(:\d+)?$/i.test(name.slice(0, slash));
  }

  private denied(host: string): OciError {
    return new OciError('DENIED', {
      upstream: host,
      reason: 'upstream not configured; stevedore only contacts configured upstreams',
      hint: `add it with --upstream ${host}=https://${host} (or under "upstreams:" in the config file)`,
    });
  }
}
