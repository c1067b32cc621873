/**
 * What a dashboard snapshot holds: the {@link DashboardSnapshot} a collector returns, one
 * {@link BreakerView} per breaker, and the state codes of its series (types and constants only).
 *
 * @module
 */
import type { CircuitState } from 'tripswitch';
import type { ClusterView } from './source.js';

/** State names by code, in order of severity (a bucket keeps the most severe state seen). */
export const STATE_CODES: readonly CircuitState[] = [
  'closed',
  'metrics-only',
  'disabled',
  'half-open',
  'open',
  'isolated',
];
/** A state's code in {@link STATE_CODES} (0 for a name it does not hold). */
export const codeOf = (s: CircuitState): number => {
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
