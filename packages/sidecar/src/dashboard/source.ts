/**
 * Where the dashboard's breakers come from: a registry, a sidecar or any `{ breakers() }`, all
 * read as a {@link BreakerSource}.
 *
 * @module
 */
import type { BreakerRegistry, CircuitBreaker, Subscription } from 'tripswitch';

/**
 * The most general source: a function listing breakers by name, read again on every tick (so a
 * source whose breakers change, like a reloaded sidecar, is followed), and optionally a way to
 * hear about additions/removals sooner than the next tick.
 *
 * @example
 * ```ts
 * const source: BreakerSource = { breakers: () => [['payments', payments], ['search', search]] };
 * ```
 */
export interface BreakerSource {
  breakers(): Iterable<readonly [string, CircuitBreaker]>;
  /** Calls `onChange` when the set of breakers changes. Optional. */
  watch?(onChange: () => void): Subscription;
  /** Extra data about one breaker's owner (a sidecar cluster's hosts and limits). Optional. */
  details?(name: string, now: number): ClusterView | undefined;
}

/**
 * A sidecar cluster's hosts (with outlier ejections) and admission limits by priority.
 *
 * @example
 * ```ts
 * const { hosts, limits }: ClusterView = view.cluster!;
 * console.log(hosts.filter((h) => h.ejected).length, limits.high?.active);
 * ```
 */
export interface ClusterView {
  hosts: Array<{
    address: string;
    active: number;
    ejected: boolean;
    ejectedUntil?: number;
    ejections: number;
  }>;
  limits: Record<
    string,
    {
      active: number;
      maxRequests: number;
      pending: number;
      maxPending: number;
      retries: number;
      maxRetries: number;
    }
  >;
}

interface HostLike {
  address?: unknown;
  active?: unknown;
  ejectedUntil?: unknown;
  ejections?: unknown;
}
interface LimiterLike {
  active?: unknown;
  pending?: unknown;
  retries?: unknown;
  maxRequests?: unknown;
  maxPending?: unknown;
  maxRetries?: unknown;
}
const n0 = (x: unknown): number => (typeof x === 'number' && Number.isFinite(x) ? x : 0);

/** Reads a sidecar cluster structurally: a cluster without hosts or limits yields what it has. */
function clusterView(c: { hosts?: unknown; limits?: unknown }, now: number): ClusterView | undefined {
  if (!Array.isArray(c.hosts) && (typeof c.limits !== 'object' || c.limits === null)) return undefined;
  const hosts: ClusterView['hosts'] = [];
  for (const h of (Array.isArray(c.hosts) ? c.hosts : []) as HostLike[]) {
    const until = n0(h.ejectedUntil);
    const row: ClusterView['hosts'][number] = {
      address: String(h.address),
      active: n0(h.active),
      ejected: until > now,
      ejections: n0(h.ejections),
    };
    if (until > now) row.ejectedUntil = until;
    hosts.push(row);
  }
  const limits: ClusterView['limits'] = {};
  if (typeof c.limits === 'object' && c.limits !== null)
    for (const [p, l] of Object.entries(c.limits as Record<string, LimiterLike>)) {
      if (typeof l !== 'object' || l === null) continue;
      limits[p] = {
        active: n0(l.active),
        maxRequests: n0(l.maxRequests),
        pending: n0(l.pending),
        maxPending: n0(l.maxPending),
        retries: n0(l.retries),
        maxRetries: n0(l.maxRetries),
      };
    }
  return { hosts, limits };
}

/**
 * What the dashboard needs of a `Sidecar` (structural, so the class is not imported at runtime).
 *
 * @example
 * ```ts
 * const source: SidecarLike = sidecar; // a running `tripswitch proxy`
 * createDashboardHandler(source);
 * ```
 */
export interface SidecarLike {
  readonly clusters: ReadonlyMap<
    string,
    { readonly name: string; readonly breaker: CircuitBreaker | undefined }
  >;
}

/**
 * Anything the dashboard can show: a core registry, a sidecar, or a {@link BreakerSource}.
 *
 * @example
 * ```ts
 * const source: DashboardSource = breakerRegistry();
 * const dashboard = createDashboardHandler(source);
 * ```
 */
export type DashboardSource = BreakerRegistry | SidecarLike | BreakerSource;

function isBreakerSource(s: DashboardSource): s is BreakerSource {
  return typeof (s as Partial<BreakerSource>).breakers === 'function';
}

function isSidecarLike(s: DashboardSource): s is SidecarLike {
  const c = (s as Partial<SidecarLike>).clusters;
  return typeof c === 'object' && c !== null && typeof c.values === 'function';
}

function isRegistry(s: DashboardSource): s is BreakerRegistry {
  const r = s as Partial<BreakerRegistry>;
  return typeof r.list === 'function' && typeof r.on === 'function' && Symbol.iterator in s;
}

/**
 * Turns any {@link DashboardSource} into a {@link BreakerSource}.
 *
 * @example
 * ```ts
 * for (const [name, b] of toBreakerSource(registry).breakers()) console.log(name, b.state);
 * ```
 */
export function toBreakerSource(source: DashboardSource): BreakerSource {
  if (typeof source !== 'object' || source === null)
    throw new TypeError('dashboard: source must be a BreakerRegistry, a Sidecar or { breakers() }');
  if (isBreakerSource(source)) return source;
  if (isSidecarLike(source)) {
    return {
      *breakers() {
        // Re-read on every call: a reload swaps the clusters map and may replace breakers.
        for (const c of source.clusters.values()) if (c.breaker !== undefined) yield [c.name, c.breaker];
      },
      details(name, now) {
        const c = source.clusters.get(name);
        return c === undefined ? undefined : clusterView(c as { hosts?: unknown; limits?: unknown }, now);
      },
    };
  }
  if (isRegistry(source)) {
    return {
      *breakers() {
        for (const b of source) yield [b.name, b];
      },
      watch(onChange) {
        const a = source.on('added', onChange);
        const r = source.on('removed', onChange);
        const dispose = () => {
          a.dispose();
          r.dispose();
        };
        return { dispose, [Symbol.dispose]: dispose };
      },
    };
  }
  throw new TypeError('dashboard: source must be a BreakerRegistry, a Sidecar or { breakers() }');
}
