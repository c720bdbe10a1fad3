// The `foreign:` config section: ordered URL rules (redirect | fetch | deny) for foreign / non-distributable layers.
import { z } from 'zod';
import { parseCidr } from '../upstream/cidr.js';

const cidr = z.string().refine((v) => parseCidr(v) !== undefined, 'expected a CIDR such as 127.0.0.0/8, 10.1.2.3/32 or ::1/128');

const regex = z
  .string()
  .min(1)
  .refine((v) => {
    try {
      new RegExp(v);
      return true;
    } catch {
      return false;
    }
  }, 'not a valid regular expression');

const ruleSchema = z
  .strictObject({
    /** Glob over the whole URL ("https://*.example.com/*") or, without "://", over host[:port] ("*.example.com"). */
    match: z.string().min(1).optional(),
    /** JavaScript regular expression tested against the whole (normalised) URL. */
    regex: regex.optional(),
    action: z.enum(['redirect', 'fetch', 'deny']),
    /** fetch only: keep the verified blob in the cache (default) or just stream it through. */
    cache: z.boolean().default(true),
    /** Address ranges this rule may reach although they are loopback/private/link-local (SSRF guard). */
    allowPrivate: z.array(cidr).default([]),
  })
  .refine((r) => (r.match === undefined) !== (r.regex === undefined), 'each rule needs exactly one of "match" (glob) or "regex"');

export const foreignSchema = z
  .strictObject({
    /** First matching rule wins; a URL no rule matches is denied (like distribution's validation.manifests.urls). */
    rules: z.array(ruleSchema).default([]),
    timeouts: z
      .strictObject({
        connect: z.number().int().positive().default(5_000),
        headers: z.number().int().positive().default(15_000),
        bodyIdle: z.number().int().positive().default(30_000),
      })
      .prefault({}),
    /** Redirect hops followed per URL; every hop is checked against the rules and the address guard again. */
    maxRedirects: z.number().int().min(0).max(10).default(3),
  })
  .prefault({});

export type ForeignConfig = z.output<typeof foreignSchema>;
export type ForeignRule = ForeignConfig['rules'][number];
