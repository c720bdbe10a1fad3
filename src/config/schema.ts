// The config's shape: every key, its default and its validation (zod); the types the rest of stevedore reads.
import { z } from 'zod';
import { parseCidr } from '../upstream/cidr.js';
import type { Upstream } from '../upstream/types.js';
import { authSchema, type ClientAuthData } from './auth.js';
import { foreignSchema } from './foreign.js';
import { byteSize } from './units.js';
import { parseDuration, warmSchema } from './warm.js';

export type { Upstream };

export const BUILTIN_UPSTREAMS: Record<string, string> = {
  'docker.io': 'https://registry-1.docker.io',
  'ghcr.io': 'https://ghcr.io',
  'quay.io': 'https://quay.io',
  'registry.k8s.io': 'https://registry.k8s.io',
  'gcr.io': 'https://gcr.io',
  'mcr.microsoft.com': 'https://mcr.microsoft.com',
  'public.ecr.aws': 'https://public.ecr.aws',
};

/** Token realms the built-in upstreams use besides their own origin (see upstreams.<name>.realms). */
export const BUILTIN_REALMS: Record<string, string[]> = { 'docker.io': ['https://auth.docker.io/token'] };

const httpUrl = z.url({ protocol: /^https?$/ }).transform((u) => u.replace(/\/+$/, ''));
const cidr = z.string().refine((v) => parseCidr(v) !== undefined, 'expected a CIDR such as 10.0.0.0/8 or an address');

/** Credentials for one endpoint: sent to its URL (and a token realm on its registrable domain) only. */
const credentialKeys = {
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  passwordFile: z.string().optional(),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
  /** Token realms (URL prefixes) besides the endpoint's own origin that may receive its credentials. */
  realms: z.array(z.url({ protocol: /^https?$/ })).optional(),
  /** Private ranges its redirects may lead to (loopback, RFC 1918, link-local are refused otherwise). */
  allowPrivate: z.array(cidr).optional(),
};
/** Keys that belong to one endpoint: with `endpoints:`, they go under the endpoint, never beside the list. */
const ENDPOINT_KEYS = Object.keys(credentialKeys);

/** One place to ask, in a chain: `mirror: true` for another stevedore (or any mirror honouring ?ns=). */
const endpointSchema = z.strictObject({ url: httpUrl, mirror: z.boolean().default(false), ...credentialKeys });

/**
 * An upstream is either one URL (`url:` with its credentials) or an ordered chain (`endpoints:`, each entry with
 * its own credentials): never both, and no credentials beside `endpoints`, so credentials belong to one endpoint.
 */
const upstreamSchema = z
  .strictObject({
    url: httpUrl.optional(),
    endpoints: z.array(endpointSchema).min(1).max(8).optional(),
    ...credentialKeys,
    /** passthrough: each client's own credentials are used upstream, and the upstream confirms every client's access. */
    clientCredentials: z.enum(['config', 'passthrough']).default('config'),
  })
  .superRefine((u, ctx) => {
    if ((u.url === undefined) === (u.endpoints === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give either url or endpoints (one of them)', path: [u.url === undefined ? 'url' : 'endpoints'] });
    }
    if (u.endpoints) {
      for (const k of ENDPOINT_KEYS) {
        if (u[k as keyof typeof u] !== undefined) {
          ctx.addIssue({ code: 'custom', message: `credentials belong to one endpoint: move ${k} under that entry of endpoints`, path: [k] });
        }
      }
      if (u.clientCredentials === 'passthrough') {
        ctx.addIssue({ code: 'custom', message: 'passthrough is for a single url, not for endpoints', path: ['clientCredentials'] });
      }
      const seen = new Set<string>();
      u.endpoints.forEach((e, i) => {
        if (seen.has(e.url)) ctx.addIssue({ code: 'custom', message: `endpoint ${e.url} is listed twice`, path: ['endpoints', i, 'url'] });
        seen.add(e.url);
      });
    }
  });

const listenSchema = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT');

export const configSchema = z.strictObject({
  listen: listenSchema.default('0.0.0.0:5000'),
  data: z.string().min(1).default('./data'),
  defaultUpstream: z.string().min(1).default('docker.io'),
  builtinUpstreams: z.boolean().default(true),
  upstreams: z.record(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, 'upstream names are host[:port]'), upstreamSchema).default({}),
  tagTtl: z
    .number()
    .int()
    .min(0)
    .max(365 * 24 * 3600)
    .default(30),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** json: JSON lines; pretty: human-readable lines (pino-pretty); auto: pretty on a terminal, else JSON. */
  logFormat: z.enum(['auto', 'json', 'pretty']).default('auto'),
  timeouts: z
    .strictObject({
      connect: z.number().int().positive().default(10_000),
      headers: z.number().int().positive().default(20_000),
      bodyIdle: z.number().int().positive().default(30_000),
    })
    .prefault({}),
  /** Limits of the server socket (ms): slow or idle clients cannot hold connections or memory. */
  server: z
    .strictObject({
      /** Time for a client to send a request's headers. */
      headersTimeout: z.number().int().positive().default(20_000),
      /** Time for a client to send the whole request (headers and body; for a GET the same as headersTimeout). */
      requestTimeout: z.number().int().positive().default(30_000),
      /** An idle keep-alive connection is closed after this long. */
      keepAliveTimeout: z.number().int().positive().default(30_000),
      /** A connection on which nothing moves (a client that stopped reading, or stopped sending) is closed. */
      stallTimeout: z.number().int().positive().default(120_000),
      /** Open client connections; at the cap the longest idle one is closed. Default: half the open-file limit. */
      maxConnections: z.number().int().positive().optional(),
      /**
       * Reverse proxies in front (nginx, haproxy), as addresses or CIDRs: for connections from them, the client is
       * the rightmost X-Forwarded-For entry that is not one of them. Default: none (the socket's address).
       */
      trustedProxies: z.array(cidr).default([]),
      /**
       * Cache hits leave by sendfile(2): the kernel copies the file to the socket, no byte passes through Node
       * (Linux, plain HTTP, the addon built by npm ci). false: hits are read and written by Node.
       */
      sendfile: z.boolean().default(true),
    })
    .refine((s) => s.headersTimeout <= s.requestTimeout, { message: 'headersTimeout must not exceed requestTimeout', path: ['headersTimeout'] })
    .prefault({}),
  /** Blob downloads from upstreams (fills). */
  fills: z
    .strictObject({
      /** Seconds a fill with no reader left keeps downloading before it is cancelled (its partial kept for resume). */
      idleGrace: z.number().min(0).default(30),
      /** Fills running at once in this process; more wait in a queue. */
      maxConcurrent: z.number().int().positive().default(32),
      /** Fills running at once per upstream (foreign URLs count as one upstream). */
      maxPerUpstream: z.number().int().positive().default(8),
    })
    .prefault({}),
  /** Background re-hash of cached blobs: corrupt ones (disk rot, a hand edit) are removed and fetched again. */
  scrub: z
    .strictObject({
      /** Start a pass this long after start and after each pass ended ("24h", "30m"), or "off". */
      every: z
        .string()
        .refine((v) => v === 'off' || (parseDuration(v) ?? 0) >= 1000, 'expected "off" or a duration of at least 1s, e.g. 24h')
        .default('24h'),
      /** Bytes read per second while scrubbing, e.g. 50MB/s: the disk stays free for clients. */
      rate: byteSize.default(50_000_000),
    })
    .prefault({}),
  retries: z.number().int().min(0).max(10).default(3),
  /** Air-gapped: never contact any upstream; tags served from cache whatever their age. */
  offline: z.boolean().default(false),
  /** Storage budget for blobs + manifests; undefined = unbounded. */
  maxSize: byteSize.optional(),
  /** Evict until the data dir's file system has at least this much free. */
  minFreeDisk: byteSize.optional(),
  /** Upper bound on bytes per second fetched from all upstreams together, e.g. 20MB/s; undefined = no limit. */
  upstreamRate: byteSize.optional(),
  /** Seconds between eviction sweeps. */
  sweepInterval: z.number().int().positive().default(60),
  circuitBreaker: z
    .strictObject({
      /** Consecutive upstream failures that open the circuit. */
      failures: z.number().int().positive().default(5),
      /** Seconds the circuit stays open before one probe request is let through. */
      cooldown: z.number().int().positive().default(30),
    })
    .prefault({}),
  /** Foreign / non-distributable layers: ordered URL rules (default: deny every URL). */
  foreign: foreignSchema,
  /** Scheduled cache warming inside serve: refs, platforms, and `every: 6h` or `at: "02:00"` (local time). */
  warm: warmSchema,
  /** `serve` processes sharing the port and the data dir (node:cluster); default: one per CPU. */
  workers: z.number().int().min(1).max(256).optional(),
  /**
   * nginx in front (deploy/nginx/stevedore.conf): a cached blob is answered with an empty body and
   * `X-Accel-Redirect: <prefix><alg>/<2>/<hex>`, and nginx sends the file from <data>/blobs/ itself.
   */
  accelRedirect: z.strictObject({ prefix: z.string().regex(/^\/[A-Za-z0-9._~/-]*\/$/, 'prefix must be a URL path starting and ending with /') }).optional(),
  /** Bearer token for the admin API under /-/admin/ (off when unset); env STEVEDORE_ADMIN_TOKEN. */
  adminToken: z.string().min(16, 'adminToken must be at least 16 characters').optional(),
  /** TLS: PEM certificate (chain) and key files; both or neither; re-read on SIGHUP. */
  tlsCert: z.string().min(1).optional(),
  tlsKey: z.string().min(1).optional(),
  /** Client authentication (htpasswd, node tokens) and access rules; without it anyone who can connect pulls. */
  auth: authSchema,
});

export type ConfigInput = z.input<typeof configSchema>;
export type RawUpstream = z.output<typeof upstreamSchema>;
export type RawEndpoint = z.output<typeof endpointSchema>;
export interface Config extends Omit<z.output<typeof configSchema>, 'upstreams'> {
  readonly upstreams: Readonly<Record<string, Upstream>>;
  /** The `auth:` section with its files loaded; undefined: no client authentication. */
  readonly clientAuth?: ClientAuthData;
  readonly host: string;
  readonly port: number;
}
