/**
 * Why: an identifier sent to a company whose business is tracking (advertising, analytics,
 * telemetry, device activation) is worse than the same identifier sent to the app's own server.
 * The list is data (trackers.json, with its source and licence), matched as host suffixes so that
 * a domain covers its subdomains; the most specific entry wins. Users add their own entries in
 * `<data-dir>/trackers.json` (read in proxy/judge-config.ts; analysis stays free of file I/O).
 */
import shipped from './trackers.json';

export const TRACKER_CATEGORIES = ['advertising', 'analytics', 'crash-reporting', 'telemetry', 'activation'] as const;
export type TrackerCategory = (typeof TRACKER_CATEGORIES)[number];

export interface TrackerEntry {
  domain: string;
  company: string;
  category: TrackerCategory;
}

export interface TrackerList {
  /** The entry for the host or its closest listed parent domain. */
  match(host: string): TrackerEntry | undefined;
  readonly size: number;
}

export class TrackerListError extends Error {}

/** Checks user-written entries: each problem names the entry's index. */
export function validateTrackerEntries(data: unknown, source: string): TrackerEntry[] {
  const list = (data as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list)) throw new TrackerListError(`${source}: expected {"entries": [{"domain": ..., "company": ..., "category": ...}, ...]}`);
  const problems: string[] = [];
  const out: TrackerEntry[] = [];
  list.forEach((e: unknown, i) => {
    const entry = e as Partial<Record<keyof TrackerEntry, unknown>> | null;
    const domain = typeof entry?.domain === 'string' ? entry.domain.trim().toLowerCase().replace(/^\*\./, '').replace(/\.$/, '') : '';
    if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(domain)) problems.push(`entry ${i}: "domain" must be a host name such as tracker.example.com`);
    else if (typeof entry?.company !== 'string' || !entry.company.trim()) problems.push(`entry ${i}: "company" must be a non-empty string`);
    else if (!TRACKER_CATEGORIES.includes(entry.category as TrackerCategory)) problems.push(`entry ${i}: "category" must be one of ${TRACKER_CATEGORIES.join(', ')}`);
    else out.push({ domain, company: entry.company.trim(), category: entry.category as TrackerCategory });
  });
  if (problems.length) throw new TrackerListError(`${source}: ${problems.join('; ')}`);
  return out;
}

/** A list over the given entries; later entries replace earlier ones for the same domain. */
export function compileTrackers(entries: Iterable<TrackerEntry>): TrackerList {
  const byDomain = new Map<string, TrackerEntry>();
  for (const e of entries) byDomain.set(e.domain, e);
  return {
    size: byDomain.size,
    match(host) {
      let h = host.trim().toLowerCase().replace(/\.$/, '');
      for (;;) {
        const hit = byDomain.get(h);
        if (hit) return hit;
        const dot = h.indexOf('.');
        if (dot < 0) return undefined;
        h = h.slice(dot + 1);
      }
    },
  };
}

export const SHIPPED_TRACKERS: readonly TrackerEntry[] = validateTrackerEntries(shipped, 'trackers.json');

/** The shipped list, plus the user's entries (which win for the same domain). */
export function trackerList(userEntries: readonly TrackerEntry[] = []): TrackerList {
  return compileTrackers([...SHIPPED_TRACKERS, ...userEntries]);
}
