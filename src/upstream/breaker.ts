// Per-upstream circuit breaker: after N consecutive failures, fail fast for a cooldown, then let one probe through.
export interface BreakerOptions {
  failures: number;
  cooldownMs: number;
  now?: () => number;
}

interface State {
  failures: number;
  openUntil: number;
  probing: boolean;
}

export class CircuitBreaker {
  private readonly states = new Map<string, State>();
  private readonly now: () => number;

  constructor(private readonly opts: BreakerOptions) {
    this.now = opts.now ?? Date.now;
  }

  private state(name: string): State {
    let s = this.states.get(name);
    if (!s) this.states.set(name, (s = { failures: 0, openUntil: 0, probing: false }));
    return s;
  }

  /** undefined: go ahead; otherwise the number of ms until a probe is allowed. */
  check(name: string): number | undefined {
    const s = this.state(name);
    if (s.failures < this.opts.failures) return undefined;
    const wait = s.openUntil - this.now();
    if (wait > 0) return wait;
    if (s.probing) return 1;
    s.probing = true; // half-open: exactly one request finds out whether the upstream is back
    return undefined;
  }

  success(name: string): void {
    const s = this.state(name);
    s.failures = 0;
    s.probing = false;
  }

  failure(name: string): void {
    const s = this.state(name);
    s.failures++;
    s.probing = false;
    if (s.failures >= this.opts.failures) s.openUntil = this.now() + this.opts.cooldownMs;
  }

  isOpen(name: string): boolean {
    const s = this.states.get(name);
    return s !== undefined && s.failures >= this.opts.failures;
  }

  snapshot(): { upstream: string; open: boolean; failures: number }[] {
    return [...this.states.entries()].map(([upstream, s]) => ({ upstream, open: s.failures >= this.opts.failures, failures: s.failures }));
  }
}
