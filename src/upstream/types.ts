// An upstream registry as the rest of stevedore sees it: its name, URL, naming rule and credentials; an answer from it.
import type { Dispatcher } from 'undici';

export type Headers = Record<string, string | string[] | undefined>;

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  body: Dispatcher.ResponseData['body'];
}

export interface Upstream {
  readonly name: string;
  readonly url: string;
  /** docker.io's rule: single-component names mean library/<name>. */
  readonly libraryPrefix: boolean;
  readonly credentials?: { readonly username?: string; readonly password?: string; readonly token?: string };
  /** Token realms besides the upstream's own origin (URL prefixes); only these ever see its credentials. */
  readonly realms?: readonly string[];
  /** Private ranges (CIDR) a redirect from this upstream may lead to; loopback/private/link-local are refused otherwise. */
  readonly allowPrivate?: readonly string[];
  /** `clientCredentials: passthrough`: each client's own credentials are used upstream, and the upstream decides. */
  readonly passthrough?: boolean;
  /** Token cache key when credentials differ per client (passthrough); default the name. */
  readonly tokenKey?: string;
}
