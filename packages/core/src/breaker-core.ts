/**
 * The breaker's state machine: admission, the calling paths (`execute`, permits), outcomes,
 * transitions and their timers, manual states. Options, events, the half-open sample, the store
 * glue and snapshots are in the other `breaker-*.ts` modules; `breaker.ts` is the public entry.
 *
 * Design notes (why it is shaped like this):
 * - State is a small integer and every count is a running total, so admitting and recording a
 *   call is a handful of field reads and writes. A successful call in the closed state allocates
 *   nothing beyond the promise chain of the async function that awaits `fn`.
 * - No timer exists while a breaker is idle: open -> half-open happens on the first call after the
 *   open period. The only timers are the opt-in `eagerHalfOpen` timer (one per open period) and
 *   the half-open deadline (one per half-open period), both unref'd.
 * - Events and diagnostics payloads are built only when someone listens.
 * - The state and every counter are private fields of one class, so the hot path reads fields of
 *   one object and a caller cannot change them; the other modules are plain functions the class
 *   calls with what they need.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { withBreaker, type MethodDecorator } from './decorator.js';
import { channels } from './diagnostics.js';
import { Emitter, type Subscription } from './emitter.js';
import { CircuitOpenError } from './errors.js';
import { neverAbortedSignal } from './policy.js';
import { newCounts, type TripRule, tripReasons, type WindowSnapshot } from './trip-rules.js';
import type { BreakerContext, CircuitBreaker, Permit } from './breaker-api.js';
import {
  type BreakerEmitter,
  type BreakerEvents,
  emitFailure,
  emitNeutral,
  emitRejected,
  emitStateChange,
  emitSuccess,
  emitWouldOpen,
} from './breaker-events.js';
import { Episode, settleProbe, startSample, takeProbe, waitForProbe, wake } from './breaker-half-open.js';
import {
  type CircuitBreakerOptions,
  type ColdConfig,
  defaultIsNeutral,
  openDurationFor,
  parseOptions,
} from './breaker-options.js';
import { type BreakerSnapshot, type BreakerStats, readSnapshot } from './breaker-snapshot.js';
import { type CircuitState, stateNames } from './breaker-state.js';
import {
  attachStore,
  awaitProbe,
  detach,
  probeAllowed,
  publishOutcome,
  publishTransition,
  type StoreSession,
  untilSettledOrAborted,
  untilSynced,
} from './breaker-store.js';
import type { Validator } from './validate.js';

// Numeric states, indexes into `stateNames`; the three that admit every call come first so the
// hot path tests `< HALF`. Local constants (not imported) so the compiler folds them.
const CLOSED = 0;
const DISABLED = 1;
const METRICS = 2;
const HALF = 3;
const OPEN = 4;
const ISOLATED = 5;
const stateCodes: Record<CircuitState, number> = {
  closed: CLOSED,
  disabled: DISABLED,
  'metrics-only': METRICS,
  'half-open': HALF,
  open: OPEN,
  isolated: ISOLATED,
};

// Admission results.
const REJECT = 0;
const ADMIT = 1;
const PROBE = 2;

/**
 * A thenable that rejects with `e`. Returned from a rejection handler it rejects the derived
 * promise without a `throw`, whose unwinding costs about 500 ns per failure in V8 (measured on
 * Node 20), a quarter of a failing call.
 */
function rejectWith(e: unknown): PromiseLike<never> {
  return {
    // biome-ignore lint/suspicious/noThenProperty: a thenable is the point
    then: (_ok?: unknown, fail?: ((r: unknown) => unknown) | null) => fail?.(e) as never,
  } as PromiseLike<never>;
}

/** Frozen so a function cannot leave state on it for the next caller. */
const plainContext: BreakerContext = Object.freeze({ signal: neverAbortedSignal });

/** Node timers cannot wait longer than 2^31 - 1 ms (they fire at once instead); callers re-arm. */
function timerDelay(ms: number): number {
  return ms > 2_147_483_647 ? 2_147_483_647 : ms > 0 ? ms : 0;
}

/** The lean path's settle handlers, made once per period. */
interface Lean {
  ok: (v: unknown) => unknown;
  err: (e: unknown) => PromiseLike<never>;
}

class BreakerPermit implements Permit {
  #b: Breaker | undefined;
  readonly #start: number;
  readonly #gen: number;
  readonly #probe: boolean;
  constructor(b: Breaker, start: number, gen: number, probe: boolean) {
    this.#b = b;
    this.#start = start;
    this.#gen = gen;
    this.#probe = probe;
  }
  get settled(): boolean {
    return this.#b === undefined;
  }
  success(): void {
    const b = this.#b;
    if (b === undefined) return;
    this.#b = undefined;
    b._outcome(false, undefined, this.#start, this.#gen, this.#probe);
  }
  failure(error?: unknown): void {
    const b = this.#b;
    if (b === undefined) return;
    this.#b = undefined;
    b._outcome(true, error, this.#start, this.#gen, this.#probe);
  }
  neutral(error?: unknown): void {
    const b = this.#b;
    if (b === undefined) return;
    this.#b = undefined;
    b._neutral(error, this.#start, this.#gen, this.#probe);
  }
}

class Breaker implements CircuitBreaker {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'breaker' {
    return 'breaker';
  }

  readonly name: string;
  readonly #clock: Clock;
  readonly #rule: TripRule;
  /** Settings read only off the hot path; shared between breakers with equal settings. */
  readonly #cfg: ColdConfig;
  /** The rule tracks slow calls, so every call needs its duration. */
  readonly #timed: boolean;
  /** A call longer than this is slow (Infinity: the rule does not track slow calls). */
  readonly #slowAfter: number;

  #state = CLOSED;
  /** Bumped on every transition: outcomes of calls admitted in an earlier period do not drive this one. */
  #gen = 0;
  #lastFailure: unknown = undefined;
  #consecutive = 0;
  #inFlight = 0;
  #successes = 0;
  #failures = 0;
  #rejections = 0;
  #neutral = 0;
  #slowCalls = 0;
  #events: BreakerEmitter = undefined;
  #listenerCount = 0;
  #session: StoreSession | undefined = undefined;
  /** The store has not read the shared state yet (see `StoreSession.untilSynced`). */
  #syncing = false;
  /** Settle handlers of the lean path for the current period (see `#runLean`). */
  #lean: Lean | undefined = undefined;
  /** Open/half-open bookkeeping, made on first use: a breaker that never opened does not carry it. */
  #ep: Episode | undefined = undefined;

  #e(): Episode {
    if (this.#ep === undefined) this.#ep = new Episode();
    return this.#ep;
  }

  constructor(options: CircuitBreakerOptions | undefined) {
    const { v, o, name, clock, rule, cfg } = parseOptions(options);
    this.name = name;
    this.#clock = clock;
    this.#rule = rule;
    this.#timed = rule.slowCallDuration !== undefined;
    this.#slowAfter = rule.slowCallDuration ?? Number.POSITIVE_INFINITY;
    this.#cfg = cfg;
    if (o.initialState !== undefined) this.#restore(v, o.initialState);
    // Before the store is attached: a dry run from the start, nothing to publish.
    if (v.optionalBoolean('metricsOnly', o.metricsOnly) === true)
      this.#transition(METRICS, 'metrics-only', true, undefined);
    if (o.store !== undefined) {
      const session = attachStore(v, o.store, o.name, this);
      this.#session = session;
      this.#syncing = typeof session.untilSynced === 'function';
    }
  }

  get state(): CircuitState {
    return stateNames[this.#state]!;
  }

  get nextAttemptAt(): number | undefined {
    return this.#state === OPEN ? this.#e().nextAttemptAt : undefined;
  }

  get protect(): MethodDecorator {
    return withBreaker(this);
  }

  // ---- calling ---------------------------------------------------------------------------------

  execute<T>(fn: (ctx: BreakerContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (this.#syncing) {
      const pending = this.#untilSynced();
      if (pending !== undefined) return this.#syncThenExecute(fn, signal, pending);
    }
    return this.#execute(fn, signal);
  }

  /** The store's first read is on its way (or `undefined` from now on: it is done). */
  #untilSynced(): Promise<unknown> | undefined {
    const p = untilSynced(this.#session);
    if (p === undefined) this.#syncing = false;
    return p;
  }

  /** Waits for the store's first read (racing the caller's signal), then decides once. */
  async #syncThenExecute<T>(
    fn: (ctx: BreakerContext) => PromiseLike<T> | T,
    signal: AbortSignal | undefined,
    pending: Promise<unknown>,
  ): Promise<T> {
    if (
      signal !== undefined &&
      (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function')
    )
      throw new TypeError('execute: signal must be an AbortSignal');
    await untilSettledOrAborted(Promise.resolve(pending), signal);
    return this.#execute(fn, signal);
  }

  #execute<T>(fn: (ctx: BreakerContext) => PromiseLike<T> | T, signal: AbortSignal | undefined): Promise<T> {
    if (signal === undefined) {
      if (this.#state < HALF) {
        // Nothing needs the call's duration: settle through two handlers made once per breaker.
        if (!this.#timed && !this.#observed()) return this.#runLean(fn);
        return this.#run(fn, plainContext, false);
      }
    } else if (signal.aborted) return Promise.reject(signal.reason);
    else if (typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function')
      return Promise.reject(new TypeError('execute: signal must be an AbortSignal'));
    let a = this.#admit();
    if (a === REJECT && this.#overdue()) a = this.#admit();
    if (a !== REJECT) {
      return this.#run(fn, signal === undefined ? plainContext : { signal }, a === PROBE);
    }
    const ep = this.#ep;
    if (ep?.probeDenied) {
      ep.probeDenied = false;
      if (this.#session?.awaitProbe !== undefined) return this.#probeThenRun(fn, signal);
    }
    if (this.#cfg.waitForProbes && this.#state === HALF) return this.#waitThenRun(fn, signal);
    return Promise.reject(this.#rejected(true)!);
  }

  /** The store is fetching the probe permit for this call: wait for it, then ask once more. */
  async #probeThenRun<T>(
    fn: (ctx: BreakerContext) => PromiseLike<T> | T,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    await untilSettledOrAborted(awaitProbe(this.#session!), signal);
    const a = this.#admit();
    this.#ep!.probeDenied = false;
    if (a !== REJECT) return this.#run(fn, signal === undefined ? plainContext : { signal }, a === PROBE);
    if (this.#cfg.waitForProbes && this.#state === HALF) return this.#waitThenRun(fn, signal);
    throw this.#rejected(true)!;
  }

  async #run<T>(
    fn: (ctx: BreakerContext) => PromiseLike<T> | T,
    ctx: BreakerContext,
    probe: boolean,
  ): Promise<T> {
    const gen = this.#gen;
    this.#inFlight++;
    // The start time is read only when something needs a duration: slow-call tracking or a listener.
    const start = this.#timed || this.#observed() ? this.#clock.now() : Number.NaN;
    let value: T;
    try {
      value = await fn(ctx);
    } catch (err) {
      this.#settleError(err, ctx, start, gen, probe);
      throw err;
    }
    if (this.#cfg.isResultFailure !== undefined && this.#resultFails(value))
      this._outcome(true, value, start, gen, probe);
    else this._outcome(false, undefined, start, gen, probe);
    return value;
  }

  /**
   * The path without a duration (admitting states, no signal, no listener, no slow-call rule): no
   * clock read and no closure per call. The two handlers are made once per period and carry its
   * generation, so a call admitted before a transition or reset settles without driving the next
   * period, exactly as on the other paths: every outcome is recorded by `_outcome`.
   */
  #runLean<T>(fn: (ctx: BreakerContext) => PromiseLike<T> | T): Promise<T> {
    // Taken before `fn` runs: an `fn` that resets the breaker must not settle into the new period.
    const h = this.#lean ?? this.#makeLean();
    this.#inFlight++;
    let r: PromiseLike<T> | T;
    try {
      r = fn(plainContext);
    } catch (err) {
      h.err(err);
      return Promise.reject(err);
    }
    return (r instanceof Promise ? (r as Promise<T>) : Promise.resolve(r)).then(
      h.ok as (v: T) => T,
      h.err as (e: unknown) => PromiseLike<never>,
    );
  }

  #makeLean(): Lean {
    const gen = this.#gen;
    const h: Lean = {
      ok: (v: unknown): unknown => {
        if (this.#cfg.isResultFailure !== undefined && this.#resultFails(v))
          this._outcome(true, v, Number.NaN, gen, false);
        else this._outcome(false, undefined, Number.NaN, gen, false);
        return v;
      },
      err: (e: unknown): PromiseLike<never> => {
        this.#settleError(e, plainContext, Number.NaN, gen, false);
        return rejectWith(e);
      },
    };
    this.#lean = h;
    return h;
  }

  #resultFails(value: unknown): boolean {
    try {
      return this.#cfg.isResultFailure!(value) === true;
    } catch {
      // A throwing classifier must not turn a good answer into an exception; count it as a failure.
      return true;
    }
  }

  #settleError(err: unknown, ctx: BreakerContext, start: number, gen: number, probe: boolean): void {
    let neutral: boolean;
    let failure = true;
    try {
      neutral =
        this.#cfg.isNeutral !== undefined
          ? this.#cfg.isNeutral(err, ctx) === true
          : ctx !== plainContext && defaultIsNeutral(err, ctx);
      if (!neutral && this.#cfg.isFailure !== undefined) failure = this.#cfg.isFailure(err) === true;
    } catch {
      neutral = false;
    }
    if (neutral) this._neutral(err, start, gen, probe);
    else this._outcome(failure, failure ? err : undefined, start, gen, probe);
  }

  async #waitThenRun<T>(
    fn: (ctx: BreakerContext) => PromiseLike<T> | T,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    for (;;) {
      await waitForProbe(this.#e(), signal);
      const a = this.#admit();
      if (a !== REJECT) return this.#run(fn, signal === undefined ? plainContext : { signal }, a === PROBE);
      if (this.#state !== HALF) throw this.#rejected(true)!;
    }
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => PromiseLike<T> | T): (...args: A) => Promise<T> {
    if (typeof fn !== 'function') throw new TypeError('wrap: fn must be a function');
    return (...args: A) => this.execute(() => fn(...args));
  }

  tryAcquire(): Permit | undefined {
    const a = this.#admit();
    if (a === REJECT) {
      if (this.#ep !== undefined) this.#ep.probeDenied = false; // a permit cannot wait for the store
      this.#rejected(false);
      return undefined;
    }
    this.#inFlight++;
    return new BreakerPermit(this, this.#clock.now(), this.#gen, a === PROBE);
  }

  acquire(): Permit {
    let a = this.#admit();
    if (a === REJECT && this.#overdue()) a = this.#admit();
    if (a === REJECT) {
      if (this.#ep !== undefined) this.#ep.probeDenied = false;
      throw this.#rejected(true)!;
    }
    this.#inFlight++;
    return new BreakerPermit(this, this.#clock.now(), this.#gen, a === PROBE);
  }

  /** Decides whether a call may run (moving open -> half-open when the open period is over). */
  #admit(): number {
    switch (this.#state) {
      case CLOSED:
      case DISABLED:
      case METRICS:
        return ADMIT;
      case OPEN: {
        // A pending timer (eager, or the one armed below) means the open period is not over, so
        // rejections while open need no clock read.
        const ep = this.#ep!;
        ep.probeDenied = false;
        if (ep.timer !== undefined) return REJECT;
        const now = this.#clock.now();
        if (now < ep.nextAttemptAt) {
          this.#armOpenTimer(now);
          return REJECT;
        }
        if (!probeAllowed(this.#session)) {
          ep.probeDenied = true;
          return REJECT;
        }
        this.#transition(HALF, 'open-duration-elapsed', false, undefined);
        break;
      }
      case ISOLATED:
        return REJECT;
    }
    // half-open
    return takeProbe(this.#ep!, this.#cfg) ? PROBE : REJECT;
  }

  /**
   * Open, rejected on a pending timer, yet the clock says the period is over: the timer has not run
   * (a busy loop, or a caller's own timer due at the same moment ran first). Drops the timer so the
   * next admission decides by the clock. Read only where an error would be built anyway, so the
   * rejection fast path and `tryAcquire()` keep their single branch.
   */
  #overdue(): boolean {
    if (this.#state !== OPEN) return false;
    const ep = this.#ep!;
    if (ep.timer === undefined || this.#clock.now() < ep.nextAttemptAt) return false;
    this.#clock.clearTimeout(ep.timer);
    ep.timer = undefined;
    return true;
  }

  /** Arms the end-of-open-period timer: it only clears itself, the next call moves to half-open. */
  #armOpenTimer(now: number): void {
    const ep = this.#e();
    ep.timer = this.#clock.setTimeout(
      () => {
        ep.timer = undefined;
      },
      timerDelay(ep.nextAttemptAt - now),
    );
    ep.timer.unref();
  }

  /** Counts a rejection, emits it, and (when `make`) builds the error. */
  #rejected(make: boolean): CircuitOpenError | undefined {
    this.#rejections++;
    const listened = this.#events?.has('rejected') === true || channels.rejected.hasSubscribers;
    if (!make && !listened) return undefined;
    const state = this.#state;
    let retryAt: number | undefined;
    let now = 0;
    if (state !== ISOLATED) {
      now = this.#clock.now();
      retryAt = state === OPEN && this.#e().nextAttemptAt > now ? this.#e().nextAttemptAt : now;
    }
    const retryAfter = retryAt === undefined ? undefined : retryAt - now;
    if (listened) emitRejected(this.#events, this.name, stateNames[state]!, retryAfter);
    if (!make) return undefined;
    return CircuitOpenError.fast({
      breakerName: this.name,
      state: stateNames[state]!,
      retryAt,
      retryAfter,
      failures: this.#e().openFailures,
      lastFailure: this.#lastFailure,
    });
  }

  /** Whether a settled call's duration is wanted: a `success`, `failure` or `neutral` listener. */
  #observed(): boolean {
    return (
      (this.#events !== undefined &&
        (this.#events.has('success') || this.#events.has('failure') || this.#events.has('neutral'))) ||
      channels.success.hasSubscribers ||
      channels.failure.hasSubscribers ||
      channels.neutral.hasSubscribers
    );
  }

  // ---- outcomes (internal: called by permits) --------------------------------------------------

  /**
   * @internal Records a success (`failure` false) or failure: the one place every path (lean,
   * observed, signal, permit) records an outcome. Totals and events count every settled call; only
   * a call admitted in the current period (`gen`) moves the run of failures, the window or the
   * half-open verdict.
   */
  _outcome(failure: boolean, error: unknown, start: number, gen: number, probe: boolean): void {
    // Kept small enough for V8 to inline into the lean path's handlers: the rare cases (listeners,
    // a store, states other than closed) are calls out.
    this.#inFlight--;
    // NaN: nothing needed the call's duration when it was admitted.
    const duration = Number.isNaN(start) ? 0 : this.#clock.now() - start;
    const slow = duration > this.#slowAfter;
    if (slow) this.#slowCalls++;
    if (failure) {
      this.#failures++;
      if (this.#events !== undefined || channels.failure.hasSubscribers)
        emitFailure(this.#events, this.name, error, duration);
    } else {
      this.#successes++;
      if (this.#events !== undefined || channels.success.hasSubscribers)
        emitSuccess(this.#events, this.name, duration);
    }
    // Admitted in an earlier period (or a listener above ended this one): it does not drive this one.
    if (gen !== this.#gen) return;
    if (failure) {
      this.#consecutive++;
      this.#lastFailure = error;
    } else this.#consecutive = 0;
    if (this.#session !== undefined) publishOutcome(this.#session, failure, slow);
    if (this.#state === CLOSED) {
      const code = this.#rule.record(failure, slow, this.#consecutive);
      if (code !== 0) this.#trip(code);
    } else this.#outcomeOutsideClosed(failure, slow, probe);
  }

  /** An outcome of the current period in half-open, metrics-only or forced closed. */
  #outcomeOutsideClosed(failure: boolean, slow: boolean, probe: boolean): void {
    const state = this.#state;
    if (state === HALF) {
      if (!probe) return;
      const verdict = settleProbe(this.#ep!, this.#cfg, failure);
      if (verdict === undefined) wake(this.#ep);
      else this.#transition(verdict === 'probe-succeeded' ? CLOSED : OPEN, verdict, false, undefined);
    } else if (state === METRICS) {
      const rule = this.#rule;
      const code = rule.record(failure, slow, this.#consecutive);
      if (code !== 0) {
        emitWouldOpen(this.#events, this.name, tripReasons[code]!, this.#clock);
        rule.reset();
        this.#consecutive = 0;
      }
    }
  }

  /** @internal Records a neutral outcome: no count but `neutral`, the probe slot is given back. */
  _neutral(error: unknown, start: number, gen: number, probe: boolean): void {
    this.#inFlight--;
    this.#neutral++;
    if (this.#events !== undefined || channels.neutral.hasSubscribers)
      emitNeutral(this.#events, this.name, error, start, this.#clock);
    if (probe && gen === this.#gen && this.#state === HALF) {
      this.#e().probes--;
      wake(this.#ep);
    }
  }

  #trip(code: number): void {
    const c = newCounts();
    this.#rule.read(this.#clock.now(), c);
    this.#e().openFailures = code === 1 ? this.#consecutive : c.failures;
    this.#transition(OPEN, tripReasons[code]!, false, undefined);
  }

  // ---- transitions -----------------------------------------------------------------------------

  /**
   * Moves to `to`. `remote` is the store's `openUntil` (or `null` for any remote update): a remote
   * transition is not published back to the store.
   */
  #transition(to: number, reason: string, manual: boolean, remote: number | null | undefined): void {
    const from = this.#state;
    if (from === to) return;
    const now = this.#clock.now();
    this.#newPeriod();
    this.#state = to;
    this.#clearTimer();
    let openUntil: number | undefined;
    switch (to) {
      case OPEN: {
        this.#e().openedAt = now;
        if (remote === undefined) {
          this.#e().openings++;
          openUntil = now + openDurationFor(this.#cfg.open, this.#e().openings);
        } else openUntil = remote ?? now + openDurationFor(this.#cfg.open, this.#e().openings + 1);
        this.#e().nextAttemptAt = openUntil;
        this.#scheduleEager(now);
        break;
      }
      case HALF: {
        startSample(this.#e());
        if (Number.isFinite(this.#cfg.deadlineMs)) {
          const gen = this.#gen;
          const ep = this.#e();
          ep.halfOpenUntil = now + this.#cfg.deadlineMs;
          ep.timer = this.#clock.setTimeout(() => this.#onDeadline(gen), timerDelay(this.#cfg.deadlineMs));
          ep.timer.unref();
        }
        break;
      }
      default: {
        // closed, disabled, metrics-only, isolated: a fresh start for the counts.
        this.#rule.reset();
        this.#consecutive = 0;
        if (to === CLOSED || to === DISABLED || to === METRICS) {
          this.#e().openings = 0;
          this.#e().openFailures = undefined;
          this.#lastFailure = undefined;
        }
      }
    }
    if (from === HALF) wake(this.#ep);
    const name = stateNames[to]!;
    const fromName = stateNames[from]!;
    if (remote === undefined && this.#session !== undefined)
      publishTransition(this.#session, fromName, name, reason, openUntil, manual);
    emitStateChange(this.#events, this.name, fromName, name, reason, now);
  }

  /** Ends the current period: calls admitted so far settle without driving the next one. */
  #newPeriod(): void {
    this.#gen++;
    this.#lean = undefined;
  }

  #clearTimer(): void {
    const ep = this.#ep;
    if (ep?.timer !== undefined) {
      this.#clock.clearTimeout(ep.timer);
      ep.timer = undefined;
    }
  }

  #scheduleEager(now: number): void {
    if (!this.#cfg.eager) return;
    const gen = this.#gen;
    const ep = this.#e();
    ep.timer = this.#clock.setTimeout(() => this.#onEager(gen), timerDelay(ep.nextAttemptAt - now));
    ep.timer.unref();
  }

  #onEager(gen: number): void {
    const ep = this.#e();
    ep.timer = undefined;
    if (gen !== this.#gen || this.#state !== OPEN) return;
    // A timer can fire early (a period longer than a timer can wait, or a coarse timer clock).
    const now = this.#clock.now();
    if (now < ep.nextAttemptAt) {
      this.#scheduleEager(now);
      return;
    }
    // A store that says "not yet" leaves the breaker open; the next call asks again.
    if (probeAllowed(this.#session)) this.#transition(HALF, 'open-duration-elapsed', false, undefined);
  }

  #onDeadline(gen: number): void {
    const ep = this.#e();
    ep.timer = undefined;
    if (gen !== this.#gen || this.#state !== HALF) return;
    const now = this.#clock.now();
    if (now < ep.halfOpenUntil) {
      ep.timer = this.#clock.setTimeout(() => this.#onDeadline(gen), timerDelay(ep.halfOpenUntil - now));
      ep.timer.unref();
      return;
    }
    this.#transition(OPEN, 'half-open-deadline', false, undefined);
  }

  isolate(): void {
    this.#transition(ISOLATED, 'isolated', true, undefined);
  }

  forceClose(): void {
    this.#transition(DISABLED, 'forced-closed', true, undefined);
  }

  close(): void {
    this.forceClose();
  }

  metricsOnly(): void {
    this.#transition(METRICS, 'metrics-only', true, undefined);
  }

  reset(): void {
    if (this.#state === CLOSED) {
      // Clean counts are a new period: a call admitted before must not land in them.
      this.#newPeriod();
      this.#rule.reset();
      this.#consecutive = 0;
      this.#e().openings = 0;
      this.#e().openFailures = undefined;
      this.#lastFailure = undefined;
      return;
    }
    this.#transition(CLOSED, 'reset', true, undefined);
  }

  applyRemote(update: { state: CircuitState; openUntil?: number; reason: string }): void {
    const to = stateCodes[update?.state];
    if (to === undefined) throw new TypeError(`applyRemote: unknown state ${String(update?.state)}`);
    const reason = typeof update.reason === 'string' ? update.reason : 'remote';
    const until =
      typeof update.openUntil === 'number' && Number.isFinite(update.openUntil) ? update.openUntil : null;
    if (to === OPEN && this.#state === OPEN) {
      // Another instance restarted the open period: move the deadline, no state change.
      this.#e().nextAttemptAt =
        until ?? this.#clock.now() + openDurationFor(this.#cfg.open, this.#e().openings + 1);
      this.#clearTimer();
      this.#scheduleEager(this.#clock.now());
      return;
    }
    this.#transition(to, reason, false, until);
  }

  openDurationMs(): number {
    return openDurationFor(this.#cfg.open, this.#e().openings + 1);
  }

  // ---- observing -------------------------------------------------------------------------------

  on<K extends keyof BreakerEvents>(event: K, listener: (e: BreakerEvents[K]) => void): Subscription {
    if (this.#events === undefined) this.#events = new Emitter<BreakerEvents>();
    const events = this.#events;
    const sub = events.on(event, listener);
    this.#listenerCount++;
    let done = false;
    const dispose = () => {
      if (done) return;
      done = true;
      sub.dispose();
      // With the last listener gone, drop the emitter so calls take the lean path again (a
      // dashboard that subscribed for a while must not leave the breaker slower for good).
      if (--this.#listenerCount === 0 && this.#events === events) this.#events = undefined;
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  stats(): BreakerStats {
    const c = newCounts();
    this.#rule.read(this.#clock.now(), c);
    const s: BreakerStats = {
      state: stateNames[this.#state]!,
      calls: this.#successes + this.#failures + this.#neutral,
      successes: this.#successes,
      failures: this.#failures,
      rejections: this.#rejections,
      neutral: this.#neutral,
      slowCalls: this.#slowCalls,
      inFlight: this.#inFlight,
      consecutiveFailures: this.#consecutive,
      failureRate: c.failureRate,
      slowCallRate: c.slowCallRate,
      windowCalls: c.calls,
      windowFailures: c.failures,
    };
    if (this.#state === OPEN || this.#state === HALF) s.openedAt = this.#e().openedAt;
    if (this.#state === OPEN) s.nextAttemptAt = this.#e().nextAttemptAt;
    return s;
  }

  /** @internal Whether the registry may drop this breaker: closed and nothing in flight. */
  get _idle(): boolean {
    return this.#state === CLOSED && this.#inFlight === 0;
  }

  toJSON(): BreakerSnapshot {
    const snap: BreakerSnapshot = {
      version: 1,
      name: this.name,
      state: stateNames[this.#state]!,
      savedAt: this.#clock.now(),
      openings: this.#ep?.openings ?? 0,
      consecutiveFailures: this.#consecutive,
      totals: {
        successes: this.#successes,
        failures: this.#failures,
        rejections: this.#rejections,
        neutral: this.#neutral,
        slowCalls: this.#slowCalls,
      },
    };
    if (this.#state === OPEN || this.#state === HALF) snap.openedAt = this.#e().openedAt;
    if (this.#state === OPEN) snap.nextAttemptAt = this.#e().nextAttemptAt;
    if (this.#ep?.openFailures !== undefined) snap.openFailures = this.#ep.openFailures;
    const w = this.#rule.snapshot();
    if (w !== undefined) snap.window = w;
    return snap;
  }

  snapshot(): BreakerSnapshot {
    return this.toJSON();
  }

  /** Applies `initialState` (see `readSnapshot`), in the constructor. */
  #restore(v: Validator, raw: unknown): void {
    const r = readSnapshot(v, raw, this.#clock);
    const ep = this.#e();
    ep.openings = r.openings;
    this.#consecutive = r.consecutiveFailures;
    if (r.openFailures !== undefined) ep.openFailures = r.openFailures;
    this.#successes = r.successes;
    this.#failures = r.failures;
    this.#rejections = r.rejections;
    this.#neutral = r.neutral;
    this.#slowCalls = r.slowCalls;
    const code = stateCodes[r.state];
    if (code === OPEN) {
      ep.nextAttemptAt = r.nextAttemptAt;
      ep.openedAt = r.openedAt;
    }
    this.#state = code;
    if (code === OPEN) this.#scheduleEager(r.now);
    if (r.window !== undefined) {
      const w = v.object('initialState.window', r.window);
      this.#rule.restore(w as unknown as WindowSnapshot);
    }
  }

  dispose(): void {
    this.#clearTimer();
    this.#rule.dispose();
    const s = this.#session;
    this.#session = undefined;
    if (s !== undefined) detach(s);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Creates a circuit breaker.
 *
 * Throws `InvalidOptionError` (naming the option, the allowed range and the value given) for a
 * bad option, before anything is built.
 *
 * @example
 * ```ts
 * import { circuitBreaker, isCircuitOpenError } from 'tripswitch';
 *
 * const payments = circuitBreaker({
 *   name: 'payments',
 *   trip: { kind: 'count', windowSize: 50, minimumCalls: 10, failureRateThreshold: 0.5 },
 *   openDuration: { base: 5_000, max: 60_000 },
 *   isResultFailure: (r) => (r as Response).status >= 500,
 * });
 * payments.on('stateChange', (e) => console.log(`${e.name}: ${e.from} -> ${e.to} (${e.reason})`));
 *
 * try {
 *   return await payments.execute(({ signal }) => fetch(url, { signal }), req.signal);
 * } catch (err) {
 *   if (isCircuitOpenError(err)) return cachedQuote();
 *   throw err;
 * }
 * ```
 */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreaker {
  return new Breaker(options);
}

/** @internal For the registry: whether a breaker may be evicted. */
export function isIdleBreaker(b: CircuitBreaker): boolean {
  return b instanceof Breaker ? b._idle : b.state === 'closed';
}
