// What the status page shows: the data shape app.ts assembles (status.ts) and the page renders; plain values only.
import type { SweepRecord } from '../../cache/eviction.js';
import type { MinuteSample } from '../../obs/history.js';

export interface StatusData {
  version: string;
  now: number;
  startedAt: number;
  offline: boolean;
  storage: { used: number; blobs: number; manifests: number; maxSize?: number; minFreeDisk?: number; diskFree?: number; diskSize?: number };
  /** Since start: body bytes served and fetched, manifest/blob requests and how many the cache answered. */
  traffic: { served: number; fetched: number; requests: number; hits: number };
  /** Per minute over the last hours, oldest first. */
  history: MinuteSample[];
  upstreams: { name: string; url: string; open: boolean; failures: number; lastError?: string; lastErrorAt?: number }[];
  fills: { digest: string; label?: string; received: number; size?: number }[];
  topBySize: { name: string; bytes: number; blobs: number }[];
  topByPulls: { name: string; pulls: number }[];
  foreign: { digest: string; status: string; size: number; lastError?: string; url?: string }[];
  pins: { name: string; digest: string; createdAt: number }[];
  evictions: SweepRecord[];
  warm: { entry: string; startedAt: number; ok: boolean; seconds: number; fetchedBytes: number; cachedBlobs: number; failed: number }[];
}
