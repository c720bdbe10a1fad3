// Upstream-authoritative access (an upstream with `clientCredentials: passthrough`): the client's own credentials
// are used upstream, and nothing (cached by anyone) is served to a client before that upstream confirmed, with a
// HEAD carrying the client's credentials, that this client may read the repository.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { BASIC_CHALLENGE, OciError } from '../oci/errors.js';
import { DEFAULT_ACCEPT } from '../oci/media-types.js';
import type { UpstreamClient } from '../upstream/client.js';
import { fromUnreachable, fromUpstreamStatus } from '../upstream/outcomes.js';
import type { Target } from '../upstream/registries.js';
import type { Upstream } from '../upstream/types.js';

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The client's Authorization header as upstream credentials (Basic user:password, or a bearer token). */
function credentialsOf(authorization: string | undefined): Upstream['credentials'] {
  const m = /^(Basic|Bearer)\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return undefined;
  if (m[1]!.toLowerCase() === 'bearer') return { token: m[2]! };
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class PassthroughGate {
  /** Positive answers only, keyed by a hash of (credential hash, upstream, repository): never the credential. */
  private readonly confirmed: LRUCache<string, true>;

  constructor(
    private readonly client: UpstreamClient,
    ttlMs = 60_000,
  ) {
    this.confirmed = new LRUCache({ max: 50_000, ttl: ttlMs });
  }

  /**
   * For a passthrough upstream: the target carrying this client's credentials, once the upstream confirmed that
   * they may read the repository (HEAD of `path`, e.g. /manifests/v1 or /blobs/<digest>). Other upstreams: as is.
   * Throws UNAUTHORIZED (with the Basic challenge, so clients log in), DENIED, or the upstream's 404.
   */
  async admit(target: Target, path: string, authorization: string | undefined, kind: 'manifest' | 'blob' | 'tags'): Promise<Target> {
    const base = target.upstream;
    if (!base.passthrough) return target;
    const credentials = credentialsOf(authorization);
    const credHash = sha256(authorization ?? '');
    const upstream: Upstream = { ...base, ...(credentials ? { credentials } : { credentials: undefined }), tokenKey: `${base.name}#${credHash}` };
    const admitted = { ...target, upstream };
    const key = sha256(`${credHash}|${base.name}|${target.repo}`);
    if (this.confirmed.has(key)) return admitted;
    const what = { upstream: base.name, repo: target.repo, reason: 'the upstream decides who may read this repository (clientCredentials: passthrough)' };
    const notFound = kind === 'blob' ? 'BLOB_UNKNOWN' : kind === 'manifest' ? 'MANIFEST_UNKNOWN' : 'NAME_UNKNOWN';
    let res;
    try {
      res = await this.client.send(upstream, target.repo, path, kind === 'tags' ? 'GET' : 'HEAD', kind === 'manifest' ? { accept: DEFAULT_ACCEPT } : {});
      await res.body.dump().catch(() => undefined);
    } catch (e) {
      throw fromUnreachable(e, notFound, { ...what, reason: 'cannot confirm with the upstream that this client may read it' });
    }
    if (res.status === 200) {
      this.confirmed.set(key, true);
      return admitted;
    }
    if (res.status === 401 || (res.status === 403 && !credentials)) throw new OciError('UNAUTHORIZED', what, undefined, BASIC_CHALLENGE);
    if (res.status === 403) throw new OciError('DENIED', what);
    throw fromUpstreamStatus(res, notFound, what);
  }
}
