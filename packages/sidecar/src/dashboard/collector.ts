/**
 * The dashboard's data side: where breakers come from (a registry, a sidecar or any
 * `{ breakers() }`), and a collector that listens to their events while someone is watching.
 *
 * Memory is bounded per breaker: a ring of the last `latencySamples` call durations and a ring of
 * `seriesPoints` one-second buckets. Recording an event is O(1) (a bucket roll fills at most
 * `seriesPoints` empty buckets once per second); percentiles are computed on snapshot, at most
 * once per new batch of durations, in a scratch buffer shared by every breaker.
 *
 * @module
 */
import {
  type BreakerRegistry,
  type CircuitBreaker,
  type CircuitState,
  type Clock,
  isTimeoutError,
  type Subscription,
} from 'tripswitch';
import { realClock } from '../clock.js';

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

/** State names by code, in order of severity (a bucket keeps the most severe state seen). */
export const STATE_CODES: readonly CircuitState[] = [
  'closed',
  'metrics-only',
  'disabled',
  'half-open',
  'open',
  'isolated',
];
const codeOf = (s: CircuitState): number => {
  const i = STATE_CODES.indexOf(s);
  return i < 0 ? 0 : i;
};

/**
 * Latency percentiles (ms) over the recent samples; `null` when there are none.
 *
 * @example
 * ```ts
 * const { p99 }: LatencyView = snapshot.breakers[0]!.latency;
 * ```
 */
export interface LatencyView {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  /** Durations the percentiles are computed from (at most `latencySamples`). */
  samples: number;
}

/**
 * One point per second, oldest first; `start` is the epoch ms of the first point.
 *
 * @example
 * ```ts
 * const { calls, failures }: SeriesView = view.series; // calls[i] happened at start + i * 1000
 * ```
 */
export interface SeriesView {
  start: number;
  stepMs: 1000;
  calls: number[];
  failures: number[];
  rejections: number[];
  /** Failures that were timeouts (a `TimeoutError`). */
  timeouts: number[];
  /** Index into {@link DashboardSnapshot.states}: the most severe state seen in that second. */
  states: number[];
}

/**
 * Totals by outcome.
 *
 * @example
 * ```ts
 * const { success, failure, rejected }: OutcomeCounts = view.counts;
 * ```
 */
export interface OutcomeCounts {
  success: number;
  failure: number;
  /** Calls slower than the trip rule's `slowCallDuration` (they are also successes or failures). */
  slow: number;
  /** Failures that were timeouts (they are also failures); counted while the collector runs. */
  timeout: number;
  rejected: number;
  neutral: number;
}

/**
 * The trip rule's window, as the dashboard shows it.
 *
 * @example
 * ```ts
 * const { label, errorRate, rate }: WindowView = view.window; // "last 10 s", 0.6, 12.5 (calls/s)
 * ```
 */
export interface WindowView {
  /** `time`: the rule's time window; `count`: its last calls; `rolling`: the collector's own seconds (rules without a window). */
  kind: 'time' | 'count' | 'rolling';
  /** Human-readable span, e.g. `last 10 s` or `last 37 calls`. */
  label: string;
  /** Settled calls in the window. */
  calls: number;
  /** Failures / calls in the window, 0..1. */
  errorRate: number;
  /** Calls per second over the window's seconds (`time`), else over the collector's recent seconds. */
  rate: number;
}

/**
 * One breaker in a snapshot.
 *
 * @example
 * ```ts
 * for (const b of snapshot.breakers as BreakerView[]) console.log(b.name, b.state);
 * ```
 */
export interface BreakerView {
  name: string;
  state: CircuitState;
  /** Failure rate of the breaker's trip-rule window (what the breaker itself decides on). */
  failureRate: number;
  /** Totals since the breaker was created (from `stats()`). */
  calls: number;
  successes: number;
  failures: number;
  rejections: number;
  inFlight: number;
  openedAt?: number;
  nextAttemptAt?: number;
  /** Why the breaker is in its state: the `reason` of its last transition (e.g. `failure-rate`, `manual`). */
  reason?: string;
  /** The trip rule's window at the moment it opened (e.g. `6/10 calls failed (60.0%) in the last 10 s`). */
  reasonDetail?: string;
  /** Totals by outcome since the breaker was created (`timeout` since the collector started). */
  counts: OutcomeCounts;
  /** Error % and request rate over the trip rule's own window. */
  window: WindowView;
  /** The last failure, only when a `redact` hook is configured (its return value is the message). */
  lastFailure?: { at: number; message: string };
  /** For a sidecar cluster: its hosts with ejections and its limits' usage per priority. */
  cluster?: ClusterView;
  latency: LatencyView;
  /** Counts over the last `recentSeconds` of the series (only while the collector runs). */
  recent: { seconds: number; calls: number; failures: number; rejections: number; failureRate: number };
  series: SeriesView;
}

/**
 * What `/snapshot.json` returns and each SSE `snapshot` event carries.
 *
 * @example
 * ```ts
 * const snapshot: DashboardSnapshot = await (await fetch('http://127.0.0.1:9901/dashboard/snapshot.json')).json();
 * ```
 */
export interface DashboardSnapshot {
  /** Clock time of the snapshot (epoch ms). */
  at: number;
  /** Whether the collector is running (latency, recent and series are empty when it is not). */
  live: boolean;
  /** Names of the state codes used in `series.states`. */
  states: readonly CircuitState[];
  breakers: BreakerView[];
}

/**
 * Options of {@link Collector}.
 *
 * @example
 * ```ts
 * const options: CollectorOptions = { latencySamples: 2048, seriesPoints: 300, clock: testClock };
 * ```
 */
export interface CollectorOptions {
  /** @default realClock */
  clock?: Clock;
  /** Durations kept per breaker for percentiles. @default 1024 */
  latencySamples?: number;
  /** One-second points kept per breaker. @default 300 (five minutes) */
  seriesPoints?: number;
  /** Seconds summed into `recent`. @default 10 */
  recentSeconds?: number;
  /** Called synchronously on every state change of a watched breaker. */
  onStateChange?: (e: { name: string; from: CircuitState; to: CircuitState }) => void;
  /** Called when the source reports that its set of breakers changed. */
  onSourceChange?: () => void;
  /**
   * Turns a breaker's last failure into the message shown (return `undefined` to hide it). Without
   * this hook failures are never kept or shown: their messages can carry secrets.
   */
  redact?: (error: unknown, breaker: string) => string | undefined;
}

/** What a window-less rule reports in `toJSON().window`; anything else is the rule's own window. */
type WindowShape = { kind: 'time'; seconds: number } | { kind: 'count' } | { kind: 'rolling' };

function windowShape(b: CircuitBreaker): WindowShape {
  try {
    const w = b.toJSON().window as { kind?: string; bucketMs?: number; buckets?: unknown[] } | undefined;
    if (w?.kind === 'time' && typeof w.bucketMs === 'number' && Array.isArray(w.buckets))
      return { kind: 'time', seconds: Math.max(1, Math.round((w.bucketMs * w.buckets.length) / 1000)) };
    if (w?.kind === 'count') return { kind: 'count' };
  } catch {
    // A breaker-like object without toJSON: fall back to the collector's own seconds.
  }
  return { kind: 'rolling' };
}

const pct1 = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Bounded history of one breaker: fixed-size rings, allocated once. */
class Tracker {
  readonly #lat: Float64Array;
  #latCount = 0;
  #latNext = 0;
  #latDirty = false;
  #pct: [number, number, number] | undefined;

  readonly #calls: Uint32Array;
  readonly #failures: Uint32Array;
  readonly #rejections: Uint32Array;
  readonly #timeouts: Uint32Array;
  readonly #states: Uint8Array;
  #head = 0;
  #filled = 1;
  #sec: number;
  readonly #subs: Subscription[];
  readonly window: WindowShape;
  timeoutsTotal = 0;
  reason: string | undefined;
  reasonDetail: string | undefined;
  lastError: unknown;
  lastErrorAt = 0;
  #lastShown: { at: number; message: string } | undefined;
  #lastShownFor: unknown;

  constructor(
    readonly name: string,
    readonly breaker: CircuitBreaker,
    readonly clock: Clock,
    latencySamples: number,
    points: number,
    onStateChange: CollectorOptions['onStateChange'],
    readonly redact: CollectorOptions['redact'],
  ) {
    this.#lat = new Float64Array(latencySamples);
    this.#calls = new Uint32Array(points);
    this.#failures = new Uint32Array(points);
    this.#rejections = new Uint32Array(points);
    this.#timeouts = new Uint32Array(points);
    this.#states = new Uint8Array(points);
    this.#sec = Math.floor(clock.now() / 1000);
    this.#states[0] = codeOf(breaker.state);
    this.window = windowShape(breaker);
    this.#subs = [
      breaker.on('success', (e) => this.#settled(e.duration, false)),
      breaker.on('failure', (e) => {
        this.#settled(e.duration, true);
        if (isTimeoutError(e.error)) {
          this.#timeouts[this.#head]!++;
          this.timeoutsTotal++;
        }
        // Kept by reference only with a redact hook; turned into text at snapshot time, not per call.
        if (this.redact !== undefined) {
          this.lastError = e.error;
          this.lastErrorAt = this.clock.now();
        }
      }),
      breaker.on('neutral', () => {
        this.#roll();
        this.#calls[this.#head]!++;
      }),
      breaker.on('rejected', () => {
        this.#roll();
        this.#rejections[this.#head]!++;
      }),
      breaker.on('stateChange', (e) => {
        this.#roll();
        const c = codeOf(e.to);
        if (c > this.#states[this.#head]!) this.#states[this.#head] = c;
        this.#noteTransition(e.to, e.reason);
        onStateChange?.({ name: this.name, from: e.from, to: e.to });
      }),
    ];
  }

  /** Keeps the reason and, on an opening by the rule, the window that made it open. */
  #noteTransition(to: CircuitState, reason: string): void {
    this.reason = to === 'closed' ? undefined : reason;
    this.reasonDetail = undefined;
    if (to !== 'open') return;
    const st = this.breaker.stats();
    const span =
      this.window.kind === 'time'
        ? ` in the last ${this.window.seconds} s`
        : this.window.kind === 'count'
          ? ` in the last ${st.windowCalls} calls`
          : '';
    if (reason === 'slow-call-rate')
      this.reasonDetail = `slow calls ${pct1(st.slowCallRate)} of ${st.windowCalls}${span}`;
    else if (reason === 'consecutive-failures')
      this.reasonDetail = `${st.consecutiveFailures} failures in a row`;
    else if (reason === 'failure-rate' || reason === 'failure-count' || reason === 'predicate')
      this.reasonDetail = `${st.windowFailures}/${st.windowCalls} calls failed (${pct1(st.failureRate)})${span}`;
  }

  lastFailure(): { at: number; message: string } | undefined {
    if (this.redact === undefined || this.lastErrorAt === 0) return undefined;
    if (this.#lastShownFor !== this.lastError || this.#lastShown?.at !== this.lastErrorAt) {
      this.#lastShownFor = this.lastError;
      let message: string | undefined;
      try {
        message = this.redact(this.lastError, this.name);
      } catch {
        message = undefined; // a throwing hook hides the message rather than breaking the stream
      }
      this.#lastShown = typeof message === 'string' ? { at: this.lastErrorAt, message } : undefined;
    }
    return this.#lastShown;
  }

  #settled(duration: number, failed: boolean): void {
    this.#roll();
    const h = this.#head;
    this.#calls[h]!++;
    if (failed) this.#failures[h]!++;
    if (Number.isFinite(duration) && duration >= 0) {
      this.#lat[this.#latNext] = duration;
      this.#latNext = this.#latNext + 1 === this.#lat.length ? 0 : this.#latNext + 1;
      if (this.#latCount < this.#lat.length) this.#latCount++;
      this.#latDirty = true;
    }
  }

  /** Moves the newest bucket up to the current second (empty buckets carry the current state). */
  #roll(): void {
    const s = Math.floor(this.clock.now() / 1000);
    const gap = s - this.#sec;
    if (gap <= 0) return; // same second, or a clock that went back: count in the newest bucket
    const n = this.#calls.length;
    const state = codeOf(this.breaker.state);
    const steps = Math.min(gap, n);
    for (let i = 0; i < steps; i++) {
      this.#head = this.#head + 1 === n ? 0 : this.#head + 1;
      this.#calls[this.#head] = 0;
      this.#failures[this.#head] = 0;
      this.#rejections[this.#head] = 0;
      this.#timeouts[this.#head] = 0;
      this.#states[this.#head] = state;
    }
    this.#filled = Math.min(n, this.#filled + gap);
    this.#sec = s;
  }

  latency(scratch: Float64Array): LatencyView {
    const n = this.#latCount;
    if (n === 0) return { p50: null, p90: null, p99: null, samples: 0 };
    if (this.#latDirty || this.#pct === undefined) {
      const sorted = scratch.subarray(0, n);
      sorted.set(this.#lat.subarray(0, n));
      sorted.sort();
      const at = (p: number) => sorted[Math.max(0, Math.ceil(p * n) - 1)]!;
      this.#pct = [at(0.5), at(0.9), at(0.99)];
      this.#latDirty = false;
    }
    return { p50: this.#pct[0], p90: this.#pct[1], p99: this.#pct[2], samples: n };
  }

  /** Sums of the last `seconds` points (the newest, still filling, included). */
  sums(seconds: number): { calls: number; failures: number; rejections: number } {
    this.#roll();
    const n = this.#calls.length;
    const len = Math.min(this.#filled, seconds);
    let calls = 0;
    let failures = 0;
    let rejections = 0;
    for (let i = 0, j = this.#head; i < len; i++, j = j === 0 ? n - 1 : j - 1) {
      calls += this.#calls[j]!;
      failures += this.#failures[j]!;
      rejections += this.#rejections[j]!;
    }
    return { calls, failures, rejections };
  }

  series(): SeriesView {
    this.#roll();
    const n = this.#calls.length;
    const len = this.#filled;
    const calls: number[] = new Array(len);
    const failures: number[] = new Array(len);
    const rejections: number[] = new Array(len);
    const timeouts: number[] = new Array(len);
    const states: number[] = new Array(len);
    let start = this.#head - len + 1;
    if (start < 0) start += n;
    for (let i = 0; i < len; i++) {
      const j = (start + i) % n;
      calls[i] = this.#calls[j]!;
      failures[i] = this.#failures[j]!;
      rejections[i] = this.#rejections[j]!;
      timeouts[i] = this.#timeouts[j]!;
      states[i] = this.#states[j]!;
    }
    return {
      start: (this.#sec - len + 1) * 1000,
      stepMs: 1000,
      calls,
      failures,
      rejections,
      timeouts,
      states,
    };
  }

  dispose(): void {
    for (const s of this.#subs) s.dispose();
    this.#subs.length = 0;
  }
}

function positiveInt(name: string, v: number | undefined, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1 || v > max)
    throw new RangeError(`dashboard: ${name} must be an integer in [1, ${max}], got ${String(v)}`);
  return v;
}

/**
 * Follows every breaker of a source while started: subscribes on {@link Collector.start}, drops
 * every subscription on {@link Collector.stop}. Holds no timer; the caller decides when to
 * snapshot.
 *
 * @example
 * ```ts
 * const c = new Collector(registry, { clock });
 * c.start();
 * console.log(c.snapshot().breakers[0]?.latency.p99);
 * c.stop();
 * ```
 */
export class Collector {
  readonly clock: Clock;
  readonly #source: BreakerSource;
  readonly #latencySamples: number;
  readonly #points: number;
  readonly #recentSeconds: number;
  readonly #onStateChange: CollectorOptions['onStateChange'];
  readonly #onSourceChange: CollectorOptions['onSourceChange'];
  readonly #redact: CollectorOptions['redact'];
  readonly #trackers = new Map<string, Tracker>();
  #scratch: Float64Array | undefined;
  #watch: Subscription | undefined;
  #active = false;

  constructor(source: DashboardSource, options: CollectorOptions = {}) {
    this.#source = toBreakerSource(source);
    this.clock = options.clock ?? realClock;
    this.#latencySamples = positiveInt('latencySamples', options.latencySamples, 1024, 1 << 20);
    this.#points = positiveInt('seriesPoints', options.seriesPoints, 300, 86_400);
    this.#recentSeconds = positiveInt('recentSeconds', options.recentSeconds, 10, 86_400);
    this.#onStateChange = options.onStateChange;
    this.#onSourceChange = options.onSourceChange;
    if (options.redact !== undefined && typeof options.redact !== 'function')
      throw new TypeError(`dashboard: redact must be a function, got ${typeof options.redact}`);
    this.#redact = options.redact;
  }

  /** Whether the collector is subscribed. */
  get active(): boolean {
    return this.#active;
  }

  /** Breakers currently followed. */
  get size(): number {
    return this.#trackers.size;
  }

  /** Subscribes to every breaker of the source (idempotent). */
  start(): void {
    if (this.#active) return;
    this.#active = true;
    this.#watch = this.#source.watch?.(() => {
      this.sync();
      this.#onSourceChange?.();
    });
    this.sync();
  }

  /** Drops every subscription and all history (idempotent). */
  stop(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#watch?.dispose();
    this.#watch = undefined;
    for (const t of this.#trackers.values()) t.dispose();
    this.#trackers.clear();
    this.#scratch = undefined;
  }

  /** Follows breakers that appeared, drops those that left or were replaced under the same name. */
  sync(): void {
    if (!this.#active) return;
    const seen = new Set<string>();
    for (const [name, breaker] of this.#source.breakers()) {
      if (seen.has(name)) continue;
      seen.add(name);
      const t = this.#trackers.get(name);
      if (t !== undefined && t.breaker === breaker) continue;
      t?.dispose();
      this.#trackers.set(
        name,
        new Tracker(
          name,
          breaker,
          this.clock,
          this.#latencySamples,
          this.#points,
          this.#onStateChange,
          this.#redact,
        ),
      );
    }
    for (const [name, t] of this.#trackers) {
      if (seen.has(name)) continue;
      t.dispose();
      this.#trackers.delete(name);
    }
  }

  /**
   * Every breaker of the source now, sorted by name. `series: false` leaves the per-second series
   * empty (what the event stream's overview needs: a fraction of the bytes).
   */
  snapshot(opts: { series?: boolean; only?: string } = {}): DashboardSnapshot {
    this.sync();
    const withSeries = opts.series !== false;
    const out: BreakerView[] = [];
    const seen = new Set<string>();
    for (const [name, breaker] of this.#source.breakers()) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (opts.only !== undefined && name !== opts.only) continue;
      out.push(this.#view(name, breaker, withSeries));
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { at: this.clock.now(), live: this.#active, states: STATE_CODES, breakers: out };
  }

  #view(name: string, breaker: CircuitBreaker, withSeries: boolean): BreakerView {
    const st = breaker.stats();
    const t = this.#trackers.get(name);
    const tracked = t !== undefined && t.breaker === breaker ? t : undefined;
    const rs = this.#recentSeconds;
    const view: BreakerView = {
      name,
      state: st.state,
      failureRate: st.failureRate,
      calls: st.calls,
      successes: st.successes,
      failures: st.failures,
      rejections: st.rejections,
      inFlight: st.inFlight,
      counts: {
        success: st.successes,
        failure: st.failures,
        slow: st.slowCalls ?? 0,
        timeout: tracked?.timeoutsTotal ?? 0,
        rejected: st.rejections,
        neutral: st.neutral ?? 0,
      },
      window: { kind: 'rolling', label: `last ${rs} s`, calls: 0, errorRate: 0, rate: 0 },
      latency: { p50: null, p90: null, p99: null, samples: 0 },
      recent: { seconds: rs, calls: 0, failures: 0, rejections: 0, failureRate: 0 },
      series: {
        start: this.clock.now(),
        stepMs: 1000,
        calls: [],
        failures: [],
        rejections: [],
        timeouts: [],
        states: [],
      },
    };
    if (st.openedAt !== undefined) view.openedAt = st.openedAt;
    if (st.nextAttemptAt !== undefined && Number.isFinite(st.nextAttemptAt))
      view.nextAttemptAt = st.nextAttemptAt;
    if (withSeries && this.#source.details !== undefined) {
      const cluster = this.#source.details(name, this.clock.now());
      if (cluster !== undefined) view.cluster = cluster;
    }
    if (tracked === undefined) return view;
    if (tracked.reason !== undefined && st.state !== 'closed') view.reason = tracked.reason;
    if (tracked.reasonDetail !== undefined && st.state !== 'closed') view.reasonDetail = tracked.reasonDetail;
    const lf = tracked.lastFailure();
    if (lf !== undefined) view.lastFailure = lf;
    if (this.#scratch === undefined) this.#scratch = new Float64Array(this.#latencySamples);
    view.latency = tracked.latency(this.#scratch);
    const r = tracked.sums(rs);
    view.recent = {
      seconds: rs,
      calls: r.calls,
      failures: r.failures,
      rejections: r.rejections,
      failureRate: r.calls === 0 ? 0 : r.failures / r.calls,
    };
    const w = tracked.window;
    if (w.kind === 'time') {
      const sums = tracked.sums(w.seconds);
      view.window = {
        kind: 'time',
        label: `last ${w.seconds} s`,
        calls: st.windowCalls,
        errorRate: st.failureRate,
        rate: sums.calls / w.seconds,
      };
    } else if (w.kind === 'count') {
      view.window = {
        kind: 'count',
        label: `last ${st.windowCalls} calls`,
        calls: st.windowCalls,
        errorRate: st.failureRate,
        rate: r.calls / rs,
      };
    } else {
      // A consecutive rule's failureRate counts since the last close: the collector's own seconds are fairer.
      view.window = {
        kind: 'rolling',
        label: `last ${rs} s`,
        calls: r.calls,
        errorRate: view.recent.failureRate,
        rate: r.calls / rs,
      };
    }
    if (withSeries) view.series = tracked.series();
    return view;
  }
}
