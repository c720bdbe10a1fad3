// Traffic over the last hours for the status page: a small in-memory ring of per-minute samples (served, fetched, hits).
const MINUTE = 60_000;

export interface MinuteSample {
  /** Start of the minute (epoch ms). */
  t: number;
  /** Body bytes sent to clients (manifests and blobs). */
  served: number;
  /** Body bytes fetched from upstreams and foreign URLs. */
  fetched: number;
  /** Manifest and blob requests, and how many of them were answered from the cache. */
  requests: number;
  hits: number;
}

/** Outcomes answered from what stevedore holds (nothing fetched for them). */
const CACHED = new Set(['hit', 'revalidated', 'stale', 'redirect']);

export class TrafficHistory {
  private readonly ring: MinuteSample[] = [];
  /** Totals since start. */
  readonly total = { served: 0, fetched: 0, requests: 0, hits: 0 };

  constructor(
    /** How many minutes are kept (default 6 hours). */
    private readonly minutes = 360,
    private readonly now: () => number = Date.now,
  ) {}

  private current(): MinuteSample {
    const t = Math.floor(this.now() / MINUTE) * MINUTE;
    let last = this.ring.at(-1);
    if (!last || last.t !== t) {
      last = { t, served: 0, fetched: 0, requests: 0, hits: 0 };
      this.ring.push(last);
      if (this.ring.length > this.minutes) this.ring.shift();
    }
    return last;
  }

  /** A manifest or blob response: its cache outcome and the body bytes sent. */
  served(outcome: string, bytes: number): void {
    const m = this.current();
    const hit = CACHED.has(outcome) ? 1 : 0;
    m.requests++;
    m.hits += hit;
    m.served += bytes;
    this.total.requests++;
    this.total.hits += hit;
    this.total.served += bytes;
  }

  fetched(bytes: number): void {
    this.current().fetched += bytes;
    this.total.fetched += bytes;
  }

  /** Every minute of the window, oldest first, minutes without traffic included as zeros (a plot needs them). */
  samples(): MinuteSample[] {
    const end = this.current().t;
    const start = Math.max(this.ring[0]!.t, end - (this.minutes - 1) * MINUTE);
    const by = new Map(this.ring.map((m) => [m.t, m]));
    const out: MinuteSample[] = [];
    for (let t = start; t <= end; t += MINUTE) out.push(by.get(t) ?? { t, served: 0, fetched: 0, requests: 0, hits: 0 });
    return out;
  }
}
