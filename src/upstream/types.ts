// An upstream registry as the rest of stevedore sees it: its name, URL, naming rule, credentials, mirror chain; an answer from it.
import type { Dispatcher } from 'undici';

export type Headers = Record<string, string | string[] | undefined>;

export interface UpstreamResponse {
  status: number;
  headers: Headers;
  body: Dispatcher.ResponseData['body'];
}

export interface Credentials {
  readonly username?: string;
  readonly password?: string;
  readonly token?: string;
}

export interface Upstream {
  /** The registry's name (docker.io); for one endpoint of a chain, the key of that endpoint (docker.io@site:5000). */
  readonly name: string;
  readonly url: string;
  /** docker.io's rule: single-component names mean library/<name>. */
  readonly libraryPrefix: boolean;
  /** Sent to `url` (and its realms) only, never to another endpoint of the chain. */
  readonly credentials?: Credentials;
  /** Token realms besides the upstream's own origin (URL prefixes); only these ever see its credentials. */
  readonly realms?: readonly string[];
  /** Private ranges (CIDR) a redirect from this upstream may lead to; loopback/private/link-local are refused otherwise. */
  readonly allowPrivate?: readonly string[];
  /** `clientCredentials: passthrough`: each client's own credentials are used upstream, and the upstream decides. */
  readonly passthrough?: boolean;
  /** Token cache key when credentials differ per client (passthrough); default the name. */
  readonly tokenKey?: string;
  /**
   * Ordered places to ask (upstreams.<name>.endpoints), each with its own URL, credentials, realms, circuit breaker
   * and token cache (its own `name`). Absent: this upstream's own url + credentials is the one endpoint.
   */
  readonly endpoints?: readonly Endpoint[];
}

/** One endpoint of an upstream's chain. */
export interface Endpoint extends Upstream {
  /** A mirror (another stevedore, or any registry honouring containerd's ?ns=) is asked with ?ns=<upstream name>. */
  readonly mirror: boolean;
  readonly endpoints?: undefined;
}
