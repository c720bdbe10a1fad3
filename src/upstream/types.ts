// An upstream registry as the rest of stevedore sees it: its name, URL, naming rule and credentials.

export interface Upstream {
  readonly name: string;
  readonly url: string;
  /** docker.io's rule: single-component names mean library/<name>. */
  readonly libraryPrefix: boolean;
  readonly credentials?: { readonly username?: string; readonly password?: string; readonly token?: string };
}
