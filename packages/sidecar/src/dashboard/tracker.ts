/**
 * The bounded history a collector keeps of one breaker while it runs.
 *
 * Memory is bounded per breaker: a ring of the last `latencySamples` call durations and a ring of
 * `seriesPoints` one-second buckets. Recording an event is O(1) (a bucket roll fills at most
 * `seriesPoints` empty buckets once per second); percentiles are computed on snapshot, at most
 * once per new batch of durations, in a scratch buffer shared by every breaker.
 *
 * @module
 */
import {
  type CircuitBreaker,
  type CircuitState,
  type Clock,
  isTimeoutError,
  type Subscription,
} from 'tripswitch';
import type { CollectorOptions } from './collector.js';
import { codeOf, type LatencyView, type SeriesView } from './snapshot.js';

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
export class Tracker {
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
