/**
 * The dashboard's data side: a collector that listens to the events of a source's breakers while
 * someone is watching, and builds the snapshots the page and the JSON endpoints serve.
 *
 * One job per module: `collector.ts` the {@link Collector} (following a source's breakers, building
 * snapshots); `source.ts` where breakers come from (a registry, a sidecar or any `{ breakers() }`);
 * `tracker.ts` the bounded history of one breaker (its memory bounds are described there);
 * `snapshot.ts` the snapshot's shapes. This module re-exports their public names.
 *
 * @module
 */
import type { CircuitBreaker, CircuitState, Clock, Subscription } from 'tripswitch';
import { realClock } from '../clock.js';
import { type BreakerView, type DashboardSnapshot, STATE_CODES } from './snapshot.js';
import { type BreakerSource, type DashboardSource, toBreakerSource } from './source.js';
import { Tracker } from './tracker.js';

export {
  type BreakerView,
  type DashboardSnapshot,
  type LatencyView,
  type OutcomeCounts,
  type SeriesView,
  STATE_CODES,
  type WindowView,
} from './snapshot.js';
export {
  type BreakerSource,
  type ClusterView,
  type DashboardSource,
  type SidecarLike,
  toBreakerSource,
} from './source.js';

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
