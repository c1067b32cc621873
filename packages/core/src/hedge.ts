/**
 * `hedge()`: when a call is slow, start another attempt of the same work and take whichever
 * succeeds first ("The Tail at Scale", Dean & Barroso). The others are aborted through their signal.
 *
 * A hedged call holds one clock timer while a further attempt may start; a call for which
 * hedging is off (the `shouldHedge` predicate said no, or a percentile delay has too few samples
 * yet) holds none. Extra attempts are taken from a budget (a percentage of calls, as a retry
 * budget), so a service that slows down as a whole does not get its load multiplied.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { LatencyHistogram } from './latency-histogram.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { type RetryBudget, type RetryBudgetOptions, retryBudget } from './retry.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * What a hedge hands to each attempt.
 *
 * @example
 * ```ts
 * await h.execute(({ signal, hedgeAttempt }) => fetch(url, { signal, headers: { 'x-hedge': String(hedgeAttempt) } }));
 * ```
 */
export interface HedgeContext extends PolicyContext {
  /** 1 for the first attempt, 2 for the first hedge, ... */
  readonly hedgeAttempt: number;
}

/**
 * Options of {@link hedge}. Give exactly one of `delayMs` and `percentile`.
 *
 * @example
 * ```ts
 * hedge({ idempotent: true, percentile: 95, maxAttempts: 2, budget: { percent: 5 } });
 * ```
 */
export interface HedgeOptions {
  /**
   * Must be `true`: hedging runs the same work more than once at the same time, so it is only for
   * work that may be repeated (reads, idempotent writes). Required so that nobody hedges a payment
   * by accident.
   */
  idempotent: true;
  /** Start the next attempt this many ms after the previous one started, if none has succeeded. */
  delayMs?: number;
  /**
   * Start the next attempt once the previous one has taken longer than this percentile (0..100,
   * exclusive) of the recent successful attempts' latency, as measured by this policy.
   */
  percentile?: number;
  /** With `percentile`: no hedging until this many attempts have succeeded. @default 20 */
  minSamples?: number;
  /** With `percentile`: the delay never goes below this (ms). @default 1 */
  minDelayMs?: number;
  /** With `percentile`: the delay never goes above this (ms). @default Infinity */
  maxDelayMs?: number;
  /** Attempts per call, the first included (2..10). @default 2 */
  maxAttempts?: number;
  /**
   * Caps the extra attempts: a {@link RetryBudget} (shareable) or its options. Every call whose
   * hedging is on counts as a call; every extra attempt takes one from it.
   * @default { percent: 10, minRetriesPerSecond: 1 }
   */
  budget?: RetryBudget | RetryBudgetOptions;
  /**
   * Asked once per call: `false` runs the call once, with no timer. Use it to leave out a call
   * that is not idempotent, or to switch hedging off at run time.
   */
  shouldHedge?: () => boolean;
  /**
   * Whether the hedge timer keeps the process alive, like the `ref` option of Node's
   * `timers/promises`: the caller's promise may depend on the hedge (the first attempt may never
   * settle). @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link HedgePolicy}.
 *
 * @example
 * ```ts
 * h.on('hedged', ({ attempt, delayMs }) => log.debug({ attempt, delayMs }, 'hedging'));
 * ```
 */
export interface HedgeEvents {
  /** An extra attempt started. */
  hedged: { attempt: number; delayMs: number };
  /** An extra attempt was due but the budget had none left. */
  budgetExhausted: { attempt: number };
  /** A call succeeded; `attempt` is the attempt that won, `duration` the call's time in ms. */
  won: { attempt: number; duration: number };
}

/**
 * Counts of a hedge.
 *
 * @example
 * ```ts
 * const { calls, hedges, hedgeWins } = h.stats();
 * ```
 */
export interface HedgeStats {
  /** Calls since creation. */
  calls: number;
  /** Extra attempts started. */
  hedges: number;
  /** Calls won by an extra attempt. */
  hedgeWins: number;
  /** Extra attempts the budget refused. */
  budgetExhausted: number;
  /** The delay the next call would hedge after (ms); `undefined` while a percentile lacks samples. */
  delayMs: number | undefined;
}

/**
 * A policy made by {@link hedge}.
 *
 * @example
 * ```ts
 * const h: HedgePolicy = hedge({ idempotent: true, delayMs: 50 });
 * ```
 */
export interface HedgePolicy extends Policy<HedgeContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'hedge';
  stats(): HedgeStats;
  on<K extends keyof HedgeEvents>(event: K, listener: (e: HedgeEvents[K]) => void): Subscription;
  /** @internal Context keys this policy adds to a `wrap()` context. */
  readonly contextKeys: readonly string[];
}

const OWNER = 'hedge';
const KEYS = [
  'idempotent',
  'delayMs',
  'percentile',
  'minSamples',
  'minDelayMs',
  'maxDelayMs',
  'maxAttempts',
  'budget',
  'shouldHedge',
  'ref',
  'clock',
] as const;
const BUDGET_KEYS = ['percent', 'minRetriesPerSecond', 'windowMs', 'buckets'] as const;
const CONTEXT_KEYS: readonly string[] = ['hedgeAttempt'];
/** Recompute the percentile delay after this many new samples. */
const REFRESH_EVERY = 16;
/** ...except during the first samples. */
const EAGER_SAMPLES = 256;

/** The context of an attempt; its signal is made on first read. */
class Attempt implements HedgeContext {
  readonly hedgeAttempt: number;
  readonly call: HedgedCall;
  readonly started: number;
  ctl: AbortController | undefined = undefined;
  constructor(call: HedgedCall, n: number, started: number) {
    this.call = call;
    this.hedgeAttempt = n;
    this.started = started;
  }
  get signal(): AbortSignal {
    if (this.ctl === undefined) {
      this.ctl = new AbortController();
      const reason = this.call.abortReason;
      if (reason !== undefined) this.ctl.abort(reason);
    }
    return this.ctl.signal;
  }
}

/** One call with hedging on: its attempts, its timer, and (as `handleEvent`) the caller's abort listener. */
class HedgedCall {
  readonly owner: Hedge;
  readonly fn: (ctx: HedgeContext) => unknown;
  readonly caller: AbortSignal | undefined;
  readonly start: number;
  readonly attempts: Attempt[] = [];
  resolve!: (v: unknown) => void;
  reject!: (e: unknown) => void;
  inFlight = 0;
  done = false;
  /** Set when the call is over: attempts still running (or signals read later) abort with it. */
  abortReason: unknown = undefined;
  timer: TimerHandle | undefined = undefined;
  delay: number;

  constructor(
    owner: Hedge,
    fn: (ctx: HedgeContext) => unknown,
    caller: AbortSignal | undefined,
    delay: number,
  ) {
    this.owner = owner;
    this.fn = fn;
    this.caller = caller;
    this.delay = delay;
    this.start = owner.clock.now();
  }

  run(): void {
    this.caller?.addEventListener('abort', this);
    this.attempt();
  }

  attempt(): void {
    const a = new Attempt(this, this.attempts.length + 1, this.owner.clock.now());
    this.attempts.push(a);
    this.inFlight++;
    if (a.hedgeAttempt < this.owner.maxAttempts) this.arm();
    let r: unknown;
    try {
      r = this.fn(a);
    } catch (err) {
      this.failed(err);
      return;
    }
    Promise.resolve(r).then(
      (v) => this.succeeded(a, v),
      (e) => this.failed(e),
    );
  }

  arm(): void {
    this.timer = this.owner.clock.setTimeout(() => this.fire(), this.delay);
    if (!this.owner.ref) this.timer.unref();
  }

  fire(): void {
    this.timer = undefined;
    if (this.done) return;
    const n = this.attempts.length + 1;
    if (!this.owner.budget.tryRetry()) {
      this.owner.budgetRefused(n);
      return;
    }
    this.owner.hedged(n, this.delay);
    this.attempt();
  }

  succeeded(a: Attempt, v: unknown): void {
    this.inFlight--;
    if (this.done) return;
    const now = this.owner.clock.now();
    this.owner.won(a.hedgeAttempt, now - a.started, now - this.start);
    this.finish(new DOMException('hedge: another attempt succeeded first', 'AbortError'));
    this.resolve(v);
  }

  failed(err: unknown): void {
    this.inFlight--;
    if (this.done || this.inFlight > 0) return;
    // Every attempt started has failed: a hedge is for slowness, not failures (a retry outside
    // it is), so the call fails now rather than waiting for its next hedge.
    this.finish(err);
    this.reject(err);
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    if (this.done) return;
    const reason = this.caller!.reason;
    this.finish(reason);
    this.reject(reason);
  }

  finish(reason: unknown): void {
    this.done = true;
    this.abortReason = reason;
    if (this.timer !== undefined) {
      this.owner.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.caller?.removeEventListener('abort', this);
    for (const a of this.attempts) a.ctl?.abort(reason);
  }
}

class Hedge implements HedgePolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'hedge' {
    return 'hedge';
  }

  readonly contextKeys = CONTEXT_KEYS;
  readonly clock: Clock;
  readonly maxAttempts: number;
  readonly budget: RetryBudget;
  readonly ref: boolean;
  readonly #fixed: number | undefined;
  readonly #q: number;
  readonly #minSamples: number;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #shouldHedge: (() => boolean) | undefined;
  readonly #hist: LatencyHistogram | undefined;
  readonly #events = new Emitter<HedgeEvents>();
  #delay: number | undefined;
  #sinceRefresh = 0;
  #calls = 0;
  #hedges = 0;
  #hedgeWins = 0;
  #budgetExhausted = 0;

  constructor(opts: HedgeOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    if (o.idempotent !== true)
      v.fail(
        'idempotent',
        'true (hedging runs the work more than once; use it only for idempotent work)',
        o.idempotent,
      );
    this.#fixed = v.optionalNumber('delayMs', o.delayMs, { min: 0 });
    const pct = v.optionalNumber('percentile', o.percentile, { min: 0, max: 100, exclusiveMin: true });
    if ((this.#fixed === undefined) === (pct === undefined))
      v.fail('delayMs', 'given, or else percentile, but not both', o.delayMs);
    if (pct === 100) v.fail('percentile', 'a number > 0 and < 100', pct);
    this.#q = (pct ?? 0) / 100;
    this.#minSamples = v.optionalNumber('minSamples', o.minSamples, { min: 1, integer: true }) ?? 20;
    this.#minDelay = v.optionalNumber('minDelayMs', o.minDelayMs, { min: 0 }) ?? 1;
    this.#maxDelay = v.optionalNumber('maxDelayMs', o.maxDelayMs, { min: 0 }) ?? Number.POSITIVE_INFINITY;
    if (this.#maxDelay < this.#minDelay)
      v.fail('maxDelayMs', `>= minDelayMs (${this.#minDelay})`, this.#maxDelay);
    if (pct === undefined)
      for (const k of ['minSamples', 'minDelayMs', 'maxDelayMs'] as const)
        if (o[k] !== undefined) v.fail(k, 'left out with delayMs (it applies to percentile)', o[k]);
    this.maxAttempts =
      v.optionalNumber('maxAttempts', o.maxAttempts, { min: 2, max: 10, integer: true }) ?? 2;
    this.#shouldHedge = v.optionalFunction('shouldHedge', o.shouldHedge);
    this.ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.clock = v.clock('clock', o.clock) ?? systemClock;
    this.budget = this.#budget(v, o.budget);
    this.#hist = pct === undefined ? undefined : new LatencyHistogram();
    this.#delay = this.#fixed;
  }

  #budget(v: ReturnType<typeof validator>, b: unknown): RetryBudget {
    if (b === undefined) return retryBudget({ percent: 10, minRetriesPerSecond: 1, clock: this.clock });
    const given = b as Partial<RetryBudget>;
    if (typeof given?.tryRetry === 'function' && typeof given.recordCall === 'function')
      return b as RetryBudget;
    const o = v.object('budget', b);
    rejectUnknownKeys(OWNER, o, BUDGET_KEYS, 'budget.');
    // Checked here so the message names `budget.<field>` and this factory.
    v.optionalNumber('budget.percent', o.percent, { min: 0, max: 1000 });
    v.optionalNumber('budget.minRetriesPerSecond', o.minRetriesPerSecond, { min: 0 });
    v.optionalNumber('budget.windowMs', o.windowMs, { min: 1, max: 86_400_000 });
    v.optionalNumber('budget.buckets', o.buckets, { min: 1, max: 1000, integer: true });
    return retryBudget({ percent: 10, minRetriesPerSecond: 1, ...o, clock: this.clock });
  }

  stats(): HedgeStats {
    return {
      calls: this.#calls,
      hedges: this.#hedges,
      hedgeWins: this.#hedgeWins,
      budgetExhausted: this.#budgetExhausted,
      delayMs: this.#delay,
    };
  }

  on<K extends keyof HedgeEvents>(event: K, listener: (e: HedgeEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: HedgeContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (signal === neverAbortedSignal) signal = undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.#calls++;
    let on = true;
    if (this.#shouldHedge !== undefined) {
      try {
        on = this.#shouldHedge() === true;
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (on) this.budget.recordCall();
    const delay = on ? this.#delay : undefined;
    if (delay === undefined) return this.#once(fn, signal);
    const call = new HedgedCall(this, fn as (ctx: HedgeContext) => unknown, signal, delay);
    return new Promise<T>((resolve, reject) => {
      call.resolve = resolve as (v: unknown) => void;
      call.reject = reject;
      call.run();
    });
  }

  /** A call run once, with no timer; with a percentile delay its latency still feeds the estimate. */
  #once<T>(fn: (ctx: HedgeContext) => PromiseLike<T> | T, signal: AbortSignal | undefined): Promise<T> {
    const ctx: HedgeContext = { signal: signal ?? neverAbortedSignal, hedgeAttempt: 1 };
    if (this.#hist === undefined) {
      try {
        return Promise.resolve(fn(ctx));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const started = this.clock.now();
    let r: PromiseLike<T> | T;
    try {
      r = fn(ctx);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(r).then((v) => {
      this.#sample(this.clock.now() - started);
      return v;
    });
  }

  #sample(ms: number): void {
    const h = this.#hist;
    if (h === undefined) return;
    h.record(ms);
    if (h.recorded < this.#minSamples) return;
    // Early estimates move most: recomputed on every sample at first, then every few.
    if (h.recorded > EAGER_SAMPLES && ++this.#sinceRefresh < REFRESH_EVERY) return;
    this.#sinceRefresh = 0;
    const d = h.quantile(this.#q)!;
    this.#delay = Math.min(this.#maxDelay, Math.max(this.#minDelay, d));
  }

  /** @internal */
  hedged(attempt: number, delayMs: number): void {
    this.#hedges++;
    if (this.#events.has('hedged')) this.#events.emit('hedged', { attempt, delayMs });
  }

  /** @internal */
  budgetRefused(attempt: number): void {
    this.#budgetExhausted++;
    if (this.#events.has('budgetExhausted')) this.#events.emit('budgetExhausted', { attempt });
  }

  /** @internal */
  won(attempt: number, attemptMs: number, callMs: number): void {
    if (attempt > 1) this.#hedgeWins++;
    this.#sample(attemptMs);
    if (this.#events.has('won')) this.#events.emit('won', { attempt, duration: callMs });
  }
}

/**
 * Hedges a call: if no attempt has succeeded `delayMs` (or the observed `percentile` latency)
 * after the last one started, another attempt of the same work starts, up to `maxAttempts`; the
 * first success is the call's result and the other attempts are aborted through their
 * `ctx.signal` (with an `AbortError`). The call fails only when every attempt started has failed
 * (with the last error): a hedge cuts tail latency, a `retry` outside it handles failures.
 *
 * Only for idempotent work (`idempotent: true` is required; `shouldHedge` leaves calls out). In
 * `wrap(hedge, breaker, timeout)` every attempt goes through the breaker and gets its own timeout,
 * and an aborted losing attempt counts as neutral for the breaker. Extra attempts come from a
 * budget (10% of calls by default).
 *
 * @example
 * ```ts
 * import { circuitBreaker, hedge, timeout, wrap } from 'tripswitch';
 * const reads = wrap(
 *   hedge({ idempotent: true, percentile: 95, budget: { percent: 5 } }),
 *   circuitBreaker({ name: 'catalog' }),
 *   timeout({ ms: 2_000 }),
 * );
 * const item = await reads.execute(({ signal }) => fetch(itemUrl, { signal }), req.signal);
 * ```
 */
export function hedge(options: HedgeOptions): HedgePolicy {
  return new Hedge(options);
}
