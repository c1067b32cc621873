/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
/**
 * The circuit breaker.
 *
 * Design notes (why it is shaped like this):
 * - State is a small integer and every count is a running total, so admitting and recording a
 *   call is a handful of field reads and writes. A successful call in the closed state allocates
 *   nothing beyond the promise chain of the async function that awaits `fn`.
 * - No timer exists while a breaker is idle: open -> half-open happens on the first call after the
 *   open period. The only timers are the opt-in `eagerHalfOpen` timer (one per open period) and
 *   the half-open deadline (one per half-open period), both unref'd.
 * - Events and diagnostics payloads are built only when someone listens.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { withBreaker, type MethodDecorator } from './decorator.js';
import { channels } from './diagnostics.js';
import { Emitter, type Subscription } from './emitter.js';
import { CircuitOpenError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import {
  createTripRule,
  newCounts,
  type TripOptions,
  type TripRule,
  tripReasons,
  type WindowSnapshot,
} from './trip-rules.js';
import { rejectUnknownKeys, type Validator, validator } from './validate.js';

/**
 * Every state a breaker can be in. `isolated`, `disabled` and `metrics-only` are set by hand.
 *
 * @example
 * ```ts
 * if (breaker.state === 'open') console.warn(`retry after ${breaker.nextAttemptAt}`);
 * ```
 */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated' | 'disabled' | 'metrics-only';

// Numeric states; the three that admit every call come first so the hot path tests `< HALF`.
const CLOSED = 0;
const DISABLED = 1;
const METRICS = 2;
const HALF = 3;
const OPEN = 4;
const ISOLATED = 5;
const stateNames: readonly CircuitState[] = [
  'closed',
  'disabled',
  'metrics-only',
  'half-open',
  'open',
  'isolated',
];
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
 * Open duration growing with consecutive openings: `min(max, base * multiplier^(n-1))`, minus jitter.
 *
 * @example
 * ```ts
 * circuitBreaker({ openDuration: { base: 5_000, multiplier: 2, max: 120_000, jitter: 0.2 } });
 * ```
 */
export interface OpenDurationBackoff {
  /** First open period in ms. */
  base: number;
  /** Cap in ms. @default max(base, 300_000) */
  max?: number;
  /** Growth factor per consecutive opening (>= 1). @default 2 */
  multiplier?: number;
  /** Fraction in [0, 1] of the period removed at random (spreads probes of many instances). @default 0 */
  jitter?: number;
}

/**
 * Half-open behaviour.
 *
 * A half-open period judges a fixed sample of `max(maxProbes, successesToClose)` probes, at most
 * `maxProbes` of them at once (a probe the caller cancels, a neutral outcome, gives its place
 * back). The verdict depends only on how many of the sample failed, never on which probe finished
 * first: it is taken when the sample is complete, or as soon as the probes still outstanding can
 * no longer change it (a failure without `failureRateThreshold`, say, reopens at once).
 *
 * @example
 * ```ts
 * // Four probes at once; reopen if two or more of the four fail, close otherwise.
 * circuitBreaker({ halfOpen: { maxProbes: 4, failureRateThreshold: 0.5, deadlineMs: 10_000 } });
 * ```
 */
export interface HalfOpenOptions {
  /** Probe calls admitted at once in half-open. @default 1 */
  maxProbes?: number;
  /**
   * Without `failureRateThreshold`: successful probes needed to close, every probe of the sample
   * succeeding (the sample is `max(maxProbes, successesToClose)` probes, so with `maxProbes` 3 all
   * three must succeed). With it: the sample size, when larger than `maxProbes`. @default 1
   */
  successesToClose?: number;
  /**
   * Judge the sample as a rate, as Resilience4j does: reopen when failed / sample reaches this
   * value in (0, 1], close otherwise (so with `maxProbes: 4` and 0.5, one failure of four closes
   * and two reopen). Without it, any failed probe reopens. @default undefined (any failure reopens)
   */
  failureRateThreshold?: number;
  /**
   * A half-open period that has not ended after this many ms reopens the breaker, so a probe
   * that never settles cannot wedge it. `Infinity` disables it. @default 60_000
   */
  deadlineMs?: number;
  /**
   * Callers arriving while every probe slot is taken wait for the probes' outcome (and then run,
   * probe, or are rejected) instead of being rejected at once. Waits stop on abort. @default false
   */
  waitForProbes?: boolean;
}

/**
 * A class of errors, for `isFailure: [TypeError, HttpError]`.
 *
 * @example
 * ```ts
 * circuitBreaker({ isFailure: [TimeoutError, HttpServerError] });
 * ```
 */
// biome-ignore lint/suspicious/noExplicitAny: constructors of any arity
export type ErrorClass = abstract new (...args: any[]) => unknown;

/**
 * Options of {@link circuitBreaker}.
 *
 * @example
 * ```ts
 * const opts: CircuitBreakerOptions = { name: 'search', trip: { kind: 'time', windowMs: 30_000, failureCount: 5 } };
 * ```
 */
export interface CircuitBreakerOptions {
  /**
   * Name in events, errors, metrics and the store. Required with `store`: breakers sharing a store
   * are told apart by name, so two unnamed ones would share one state. @default 'default'
   */
  name?: string;
  /** Source of time and timers. @default systemClock */
  clock?: Clock;
  /** When a closed breaker opens. @default { kind: 'consecutive', threshold: 5 } */
  trip?: TripOptions;
  /** Open period in ms, or a backoff growing with consecutive openings. @default 30_000 */
  openDuration?: number | OpenDurationBackoff;
  /** Half-open behaviour. @default { maxProbes: 1, successesToClose: 1, deadlineMs: 60_000, waitForProbes: false } */
  halfOpen?: HalfOpenOptions;
  /** Move to half-open when the open period ends (one unref'd timer) instead of on the next call. @default false */
  eagerHalfOpen?: boolean;
  /**
   * Which thrown errors count as failures: a predicate, or error classes. Other errors are
   * rethrown but count as successes (the dependency answered). @default every error
   */
  isFailure?: ((err: unknown) => boolean) | readonly ErrorClass[];
  /**
   * Which resolved values count as failures (e.g. `(r) => r.status >= 500`). Such a call still
   * resolves with its value (the breaker counts it, it does not turn it into an error), so to tell
   * from the caller, apply the same predicate to the value; the breaker's `failure` event carries
   * the value as its `error`. @default none
   */
  isResultFailure?: (result: unknown) => boolean;
  /**
   * Errors that count as neither success nor failure; the permit is given back. @default the
   * caller's own abort: `ctx.signal.aborted` and the error is the signal's reason or an `AbortError`
   */
  isNeutral?: (err: unknown, ctx: PolicyContext) => boolean;
  /** State to start from, from `toJSON()` (a half-open snapshot restores as open). @default closed */
  initialState?: BreakerSnapshot;
  /** Shared state (for example `@tripswitch/redis`); needs a `name`. @default none */
  store?: BreakerStore;
  /**
   * Start in `metrics-only` (a dry run: counts, events and `wouldOpen`, never a rejection), as
   * `metricsOnly()` does; `reset()` later makes it a real breaker. Overrides `initialState`'s
   * state. @default false
   */
  metricsOnly?: boolean;
}

/**
 * What `execute` passes to `fn`.
 *
 * @example
 * ```ts
 * await breaker.execute(({ signal }) => fetch(url, { signal }), AbortSignal.timeout(2_000));
 * ```
 */
export type BreakerContext = PolicyContext;

/**
 * A two-step call: report how the work went, exactly once. Later reports are ignored.
 *
 * @example
 * ```ts
 * const permit = breaker.tryAcquire();
 * if (!permit) return fallback();
 * try { const r = await work(); permit.success(); return r; }
 * catch (err) { permit.failure(err); throw err; }
 * ```
 */
export interface Permit {
  /** The call succeeded. */
  success(): void;
  /** The call failed (counts as a failure whatever `isFailure` says). */
  failure(error?: unknown): void;
  /** The call counts as neither (e.g. cancelled by the caller); gives the slot back. */
  neutral(error?: unknown): void;
  /** True once one of the three was called. */
  readonly settled: boolean;
}

/**
 * Counts returned by `stats()`; plain numbers.
 *
 * @example
 * ```ts
 * const { state, failureRate, rejections } = breaker.stats();
 * ```
 */
export interface BreakerStats {
  state: CircuitState;
  /** Settled calls (successes + failures + neutral) since creation. */
  calls: number;
  successes: number;
  failures: number;
  /** Calls rejected without running. */
  rejections: number;
  neutral: number;
  /** Calls slower than the rule's `slowCallDuration`. */
  slowCalls: number;
  /** Calls admitted and not settled yet. */
  inFlight: number;
  consecutiveFailures: number;
  /** Failure rate of the trip rule's window (or since the last close for `consecutive`). */
  failureRate: number;
  /** Slow-call rate of the trip rule's window. */
  slowCallRate: number;
  /** Calls in the trip rule's window. */
  windowCalls: number;
  /** Failures in the trip rule's window. */
  windowFailures: number;
  openedAt?: number;
  nextAttemptAt?: number;
}

/**
 * A JSON-safe picture of a breaker, restorable with `initialState`.
 *
 * @example
 * ```ts
 * await fs.writeFile('breaker.json', JSON.stringify(breaker));
 * const restored = circuitBreaker({ initialState: JSON.parse(await fs.readFile('breaker.json', 'utf8')) });
 * ```
 */
export interface BreakerSnapshot {
  version: 1;
  name: string;
  state: CircuitState;
  /** Clock time the snapshot was taken. */
  savedAt: number;
  openedAt?: number;
  nextAttemptAt?: number;
  /** Consecutive openings (drives the open-duration backoff). */
  openings: number;
  consecutiveFailures: number;
  /** Failures counted when the breaker last opened. */
  openFailures?: number;
  totals: {
    successes: number;
    failures: number;
    rejections: number;
    neutral: number;
    slowCalls: number;
  };
  window?: WindowSnapshot;
}

/**
 * Events of a breaker (the same payloads go to `node:diagnostics_channel`).
 *
 * @example
 * ```ts
 * breaker.on('stateChange', ({ name, from, to, reason }) => log.info({ name, from, to, reason }));
 * ```
 */
export interface BreakerEvents {
  stateChange: { name: string; from: CircuitState; to: CircuitState; reason: string; at: number };
  success: { name: string; duration: number };
  failure: { name: string; error: unknown; duration: number };
  rejected: { name: string; state: CircuitState; retryAfter: number | undefined };
  neutral: { name: string; error: unknown; duration: number };
  /** In `metrics-only`, the trip rule would have opened the breaker (its window then restarts). */
  wouldOpen: { name: string; reason: string; at: number };
}

/**
 * Shared state for breakers (see docs/architecture.md).
 *
 * @example
 * ```ts
 * const payments = circuitBreaker({ name: 'payments', store: redisStore({ url }) });
 * ```
 */
export interface BreakerStore {
  attach(handle: BreakerHandle): StoreSession;
}

/**
 * What a breaker shows its store.
 *
 * @example
 * ```ts
 * // inside a store
 * attach(handle) { handle.applyRemote({ state: 'open', openUntil: Date.now() + 30_000, reason: 'remote' }); }
 * ```
 */
export interface BreakerHandle {
  readonly name: string;
  readonly state: CircuitState;
  snapshot(): BreakerSnapshot;
  /** Applies a state decided elsewhere, without publishing it back to the store. */
  applyRemote(update: { state: CircuitState; openUntil?: number; reason: string }): void;
  /** The open period (backoff included) the breaker would use for its next trip. */
  openDurationMs?(): number;
}

/**
 * A breaker's link to its store.
 *
 * @example
 * ```ts
 * attach: (h) => ({ onTransition: (e) => publish(h.name, e), detach: () => {} })
 * ```
 */
export interface StoreSession {
  /** A local transition happened; publish it. `manual` is true for isolate/close/reset/metricsOnly. */
  onTransition(event: {
    from: CircuitState;
    to: CircuitState;
    reason: string;
    openUntil?: number;
    manual?: boolean;
  }): void;
  /** Every recorded outcome (for fleet-wide counting); synchronous and cheap. */
  onOutcome?(outcome: 'success' | 'failure' | 'slow-success' | 'slow-failure'): void;
  /** Asked before open -> half-open; false keeps the breaker open (asked again on the next call). */
  requestProbe?(): boolean;
  /**
   * Called by `execute()` when `requestProbe()` said false: resolves once the store has decided
   * (for a shared store, when the fleet-wide probe permit arrived or was refused), after which the
   * call asks `requestProbe()` once more. Lets the first call after the open period become the
   * probe instead of being rejected while the permit is fetched, which matters for a quiet
   * service whose calls are farther apart than a permit is kept. Must settle within a bounded
   * time and never reject.
   */
  awaitProbe?(): Promise<unknown>;
  /**
   * Until the store has read the shared state once (a process started while the fleet's breaker
   * is open must not admit calls before it knows), a promise that settles when it has, or when
   * the store gave up waiting (bounded; never rejects); then `undefined` for good. `execute()`
   * waits for it, racing the caller's signal, before it decides; a permit (`tryAcquire()`)
   * cannot wait and decides on the local state. Asked on each call until it answers `undefined`.
   */
  untilSynced?(): Promise<unknown> | undefined;
  detach(): void;
}

/**
 * A circuit breaker: a {@link Policy} that stops calling a failing dependency for a while.
 *
 * @example
 * ```ts
 * const breaker = circuitBreaker({ name: 'payments' });
 * const receipt = await breaker.execute(({ signal }) => charge(order, signal), req.signal);
 * ```
 */
export interface CircuitBreaker extends Policy<BreakerContext>, BreakerHandle {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'breaker';
  readonly name: string;
  readonly state: CircuitState;
  /** Epoch ms when a probe will be admitted, while open; `undefined` otherwise. */
  readonly nextAttemptAt: number | undefined;
  /** Runs `fn(ctx)`, or rejects with `CircuitOpenError` without calling it. */
  execute<T>(fn: (ctx: BreakerContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>;
  /** A function with the same parameters that runs `fn` through `execute`. */
  wrap<A extends unknown[], T>(fn: (...args: A) => PromiseLike<T> | T): (...args: A) => Promise<T>;
  /** A standard method decorator: `@breaker.protect async call() {}`. */
  readonly protect: MethodDecorator;
  /** The open period (backoff included) the next trip would use. */
  openDurationMs(): number;
  /** A permit, or `undefined` when the breaker rejects (no error is allocated). */
  tryAcquire(): Permit | undefined;
  /** A permit; throws `CircuitOpenError` when the breaker rejects. */
  acquire(): Permit;
  /** Forced open until `reset()` (or another manual state). */
  isolate(): void;
  /** Forced closed (state `disabled`): admits everything and never opens, until `reset()`. */
  forceClose(): void;
  /**
   * Forced closed: the old name of {@link CircuitBreaker.forceClose}.
   * @deprecated Use `forceClose()` (renamed in 0.2: `close()` read like `reset()`); removed in 0.3.
   */
  close(): void;
  /** Back to `closed` with clean counts. */
  reset(): void;
  /** Dry run: records and emits events, never rejects; emits `wouldOpen` when it would have opened. */
  metricsOnly(): void;
  stats(): BreakerStats;
  toJSON(): BreakerSnapshot;
  on<K extends keyof BreakerEvents>(event: K, listener: (e: BreakerEvents[K]) => void): Subscription;
  /** Detaches from the store and cancels timers. The breaker keeps working locally. */
  dispose(): void;
  [Symbol.dispose](): void;
}

/** Frozen so a function cannot leave state on it for the next caller. */
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

const plainContext: BreakerContext = Object.freeze({ signal: neverAbortedSignal });

/**
 * Resolves when `p` settles (either way), or rejects with the signal's reason if it aborts first;
 * the abort listener is removed in both cases.
 */
function untilSettledOrAborted(p: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  const settled = p.then(
    () => {},
    () => {},
  );
  if (signal === undefined) return settled;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}

function defaultIsNeutral(err: unknown, ctx: PolicyContext): boolean {
  const s = ctx.signal;
  return (
    s.aborted &&
    (err === s.reason ||
      (typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError'))
  );
}

interface Backoff {
  base: number;
  max: number;
  multiplier: number;
  jitter: number;
}

interface ColdConfig {
  readonly open: number | Backoff;
  readonly maxProbes: number;
  /** Probes a half-open period judges: max(maxProbes, successesToClose). */
  readonly sample: number;
  readonly deadlineMs: number;
  readonly waitForProbes: boolean;
  readonly probeFailureRate: number | undefined;
  readonly eager: boolean;
  readonly isFailure: ((err: unknown) => boolean) | undefined;
  readonly isResultFailure: ((r: unknown) => boolean) | undefined;
  readonly isNeutral: ((err: unknown, ctx: PolicyContext) => boolean) | undefined;
}

const coldConfigs = new Map<string, ColdConfig>();

/** Interns settings so thousands of breakers made from the same options share one object. */
function coldConfig(c: ColdConfig): ColdConfig {
  // Settings holding caller functions are neither looked up nor kept: the cache must not pin
  // closures (and what they capture) for the life of the process.
  if (c.isFailure !== undefined || c.isResultFailure !== undefined || c.isNeutral !== undefined)
    return Object.freeze(c);
  const o = c.open;
  const open = typeof o === 'number' ? `${o}` : `${o.base},${o.max},${o.multiplier},${o.jitter}`;
  const key = `${open}|${c.maxProbes}|${c.sample}|${c.probeFailureRate}|${c.deadlineMs}|${c.waitForProbes}|${c.eager}`;
  const hit = coldConfigs.get(key);
  if (hit !== undefined) return hit;
  const frozen = Object.freeze(c);
  if (coldConfigs.size < 256) coldConfigs.set(key, frozen);
  return frozen;
}

class Episode {
  openedAt = 0;
  nextAttemptAt = 0;
  /** Consecutive openings (drives the backoff); cleared by a close. */
  openings = 0;
  openFailures: number | undefined = undefined;
  probes = 0;
  probeSuccesses = 0;
  probeFailures = 0;
  halfOpenUntil = 0;
  /** The store said "not yet" to the probe the last admission asked for (see `awaitProbe`). */
  probeDenied = false;
  /** The one timer a breaker may hold: eager half-open, end of the open period, or the half-open deadline. */
  timer: TimerHandle | undefined = undefined;
  waiters: Waiter[] | undefined = undefined;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const OWNER = 'circuitBreaker';

/** Node timers cannot wait longer than 2^31 - 1 ms (they fire at once instead); callers re-arm. */
function timerDelay(ms: number): number {
  return ms > 2_147_483_647 ? 2_147_483_647 : ms > 0 ? ms : 0;
}
const KNOWN = [
  'name',
  'clock',
  'trip',
  'openDuration',
  'halfOpen',
  'eagerHalfOpen',
  'isFailure',
  'isResultFailure',
  'isNeutral',
  'initialState',
  'store',
  'metricsOnly',
] as const;

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
  #events: Emitter<BreakerEvents> | undefined = undefined;
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
    const v = validator(OWNER);
    const o = (options === undefined ? {} : v.object('options', options)) as Record<string, unknown>;
    rejectUnknownKeys(OWNER, o, KNOWN);
    this.name = o.name === undefined ? 'default' : v.string('name', o.name);
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#rule = createTripRule(v, OWNER, o.trip, this.#clock);
    this.#timed = this.#rule.slowCallDuration !== undefined;
    this.#slowAfter = this.#rule.slowCallDuration ?? Number.POSITIVE_INFINITY;
    const open = parseOpenDuration(v, o.openDuration);
    const h = v.optionalObject('halfOpen', o.halfOpen) ?? {};
    rejectUnknownKeys(
      OWNER,
      h,
      ['maxProbes', 'successesToClose', 'failureRateThreshold', 'deadlineMs', 'waitForProbes'],
      'halfOpen.',
    );
    const maxProbes = v.optionalNumber('halfOpen.maxProbes', h.maxProbes, { min: 1, integer: true }) ?? 1;
    const successesToClose =
      v.optionalNumber('halfOpen.successesToClose', h.successesToClose, { min: 1, integer: true }) ?? 1;
    this.#cfg = coldConfig({
      open,
      maxProbes,
      sample: Math.max(maxProbes, successesToClose),
      deadlineMs: v.optionalNumber('halfOpen.deadlineMs', h.deadlineMs, { min: 1 }) ?? 60_000,
      waitForProbes: v.optionalBoolean('halfOpen.waitForProbes', h.waitForProbes) ?? false,
      probeFailureRate: v.optionalNumber('halfOpen.failureRateThreshold', h.failureRateThreshold, {
        min: 0,
        max: 1,
        exclusiveMin: true,
      }),
      eager: v.optionalBoolean('eagerHalfOpen', o.eagerHalfOpen) ?? false,
      isFailure: parseIsFailure(v, o.isFailure),
      isResultFailure: v.optionalFunction('isResultFailure', o.isResultFailure),
      isNeutral: v.optionalFunction('isNeutral', o.isNeutral),
    });
    if (o.initialState !== undefined) this.#restore(v, o.initialState);
    // Before the store is attached: a dry run from the start, nothing to publish.
    if (v.optionalBoolean('metricsOnly', o.metricsOnly) === true)
      this.#transition(METRICS, 'metrics-only', true, undefined);
    if (o.store !== undefined) {
      const store = o.store as BreakerStore;
      if (typeof store !== 'object' || store === null || typeof store.attach !== 'function')
        v.fail('store', 'a BreakerStore with attach()', o.store);
      // Unnamed breakers would all be 'default' on the store and share one state.
      if (o.name === undefined)
        v.fail('name', 'a name when store is given (breakers on one store are told apart by name)', o.name);
      const session = store.attach(this);
      if (typeof session !== 'object' || session === null || typeof session.onTransition !== 'function')
        v.fail('store', 'a BreakerStore whose attach() returns a StoreSession', o.store);
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
    let p: Promise<unknown> | undefined;
    try {
      p = this.#session?.untilSynced?.();
    } catch {
      p = undefined; // a broken store must not hold calls
    }
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
    let pending: Promise<unknown>;
    try {
      pending = Promise.resolve(this.#session!.awaitProbe!());
    } catch {
      pending = Promise.resolve();
    }
    await untilSettledOrAborted(pending, signal);
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
      await this.#wait(signal);
      const a = this.#admit();
      if (a !== REJECT) return this.#run(fn, signal === undefined ? plainContext : { signal }, a === PROBE);
      if (this.#state !== HALF) throw this.#rejected(true)!;
    }
  }

  #wait(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        w.onAbort = () => {
          const list = this.#e().waiters;
          const i = list === undefined ? -1 : list.indexOf(w);
          if (i >= 0) list!.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      const ep = this.#e();
      if (ep.waiters === undefined) ep.waiters = [w];
      else ep.waiters.push(w);
    });
  }

  /** Lets every waiter try again (a probe slot freed up or the state changed). */
  #wake(): void {
    const ep = this.#ep;
    const list = ep?.waiters;
    if (list === undefined || list.length === 0) return;
    ep!.waiters = undefined;
    for (const w of list) {
      if (w.onAbort !== undefined) w.signal!.removeEventListener('abort', w.onAbort);
      w.resolve();
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
        if (!this.#probeAllowed()) {
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
    const ep = this.#ep!;
    // At most maxProbes at once, and no more than the sample in all: a verdict taken on a sample
    // that grows while probes finish would depend on which finished first.
    if (
      ep.probes >= this.#cfg.maxProbes ||
      ep.probes + ep.probeSuccesses + ep.probeFailures >= this.#cfg.sample
    )
      return REJECT;
    ep.probes++;
    return PROBE;
  }

  /** Arms the end-of-open-period timer: it only clears itself, the next call moves to half-open. */
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

  #probeAllowed(): boolean {
    const s = this.#session;
    if (s === undefined || s.requestProbe === undefined) return true;
    try {
      return s.requestProbe() !== false;
    } catch {
      return true; // a broken store must not keep the breaker open forever
    }
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
    if (listened) {
      const e = { name: this.name, state: stateNames[state]!, retryAfter };
      this.#events?.emit('rejected', e);
      if (channels.rejected.hasSubscribers) channels.rejected.publish(e);
    }
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
      if (this.#events !== undefined || channels.failure.hasSubscribers) this.#emitFailure(error, duration);
    } else {
      this.#successes++;
      if (this.#events !== undefined || channels.success.hasSubscribers) this.#emitSuccess(duration);
    }
    // Admitted in an earlier period (or a listener above ended this one): it does not drive this one.
    if (gen !== this.#gen) return;
    if (failure) {
      this.#consecutive++;
      this.#lastFailure = error;
    } else this.#consecutive = 0;
    if (this.#session !== undefined) this.#publishOutcome(failure, slow);
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
      const ep = this.#ep!;
      ep.probes--;
      if (failure) ep.probeFailures++;
      else ep.probeSuccesses++;
      this.#judgeProbes(ep);
    } else if (state === METRICS) {
      const rule = this.#rule;
      const code = rule.record(failure, slow, this.#consecutive);
      if (code !== 0) {
        if (this.#events?.has('wouldOpen'))
          this.#events.emit('wouldOpen', {
            name: this.name,
            reason: tripReasons[code]!,
            at: this.#clock.now(),
          });
        rule.reset();
        this.#consecutive = 0;
      }
    }
  }

  /**
   * Takes the half-open verdict once the sample decides it: the full sample's verdict, announced
   * as soon as the probes not finished yet (running or still to be admitted) cannot change it, so
   * the same failures in any completion order give the same verdict.
   */
  #judgeProbes(ep: Episode): void {
    const n = this.#cfg.sample;
    const rate = this.#cfg.probeFailureRate;
    const failed = ep.probeFailures;
    const worst = n - ep.probeSuccesses; // failures if every outstanding probe failed
    // Rates as failed / n rather than failed >= rate * n: 0.7 * 10 is 7.000000000000001.
    const reopen = rate === undefined ? failed > 0 : failed / n >= rate;
    if (reopen) {
      ep.openFailures = failed;
      this.#transition(OPEN, rate === undefined ? 'probe-failed' : 'probe-failure-rate', false, undefined);
    } else if (rate === undefined ? worst === 0 : worst / n < rate)
      this.#transition(CLOSED, 'probe-succeeded', false, undefined);
    else this.#wake();
  }

  /** @internal Records a neutral outcome: no count but `neutral`, the probe slot is given back. */
  _neutral(error: unknown, start: number, gen: number, probe: boolean): void {
    this.#inFlight--;
    this.#neutral++;
    if (this.#events?.has('neutral') === true || channels.neutral.hasSubscribers) {
      const duration = !Number.isNaN(start) ? this.#clock.now() - start : 0;
      const e = { name: this.name, error, duration };
      this.#events?.emit('neutral', e);
      if (channels.neutral.hasSubscribers) channels.neutral.publish(e);
    }
    if (probe && gen === this.#gen && this.#state === HALF) {
      this.#e().probes--;
      this.#wake();
    }
  }

  #publishOutcome(failure: boolean, slow: boolean): void {
    const s = this.#session!;
    if (s.onOutcome === undefined) return;
    try {
      s.onOutcome(failure ? (slow ? 'slow-failure' : 'failure') : slow ? 'slow-success' : 'success');
    } catch {
      // the store's problem, not the caller's
    }
  }

  #emitSuccess(duration: number): void {
    if (this.#events?.has('success') !== true && !channels.success.hasSubscribers) return;
    const e = { name: this.name, duration };
    this.#events?.emit('success', e);
    if (channels.success.hasSubscribers) channels.success.publish(e);
  }

  #emitFailure(error: unknown, duration: number): void {
    if (this.#events?.has('failure') !== true && !channels.failure.hasSubscribers) return;
    const e = { name: this.name, error, duration };
    this.#events?.emit('failure', e);
    if (channels.failure.hasSubscribers) channels.failure.publish(e);
  }

  #trip(code: number): void {
    const c = newCounts();
    this.#rule.read(this.#clock.now(), c);
    this.#e().openFailures = code === 1 ? this.#consecutive : c.failures;
    this.#transition(OPEN, tripReasons[code]!, false, undefined);
  }

  // ---- transitions -----------------------------------------------------------------------------

  /** The open period for opening number `n` (1-based). */
  #openDurationFor(n: number): number {
    const o = this.#cfg.open;
    if (typeof o === 'number') return o;
    let d = Math.min(o.max, o.base * o.multiplier ** Math.max(0, n - 1));
    if (o.jitter > 0) d -= d * o.jitter * Math.random();
    return d;
  }

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
          openUntil = now + this.#openDurationFor(this.#e().openings);
        } else openUntil = remote ?? now + this.#openDurationFor(this.#e().openings + 1);
        this.#e().nextAttemptAt = openUntil;
        this.#scheduleEager(now);
        break;
      }
      case HALF: {
        this.#e().probes = 0;
        this.#e().probeSuccesses = 0;
        this.#e().probeFailures = 0;
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
    if (from === HALF) this.#wake();
    const name = stateNames[to]!;
    const fromName = stateNames[from]!;
    if (remote === undefined && this.#session !== undefined) {
      try {
        this.#session.onTransition(
          openUntil === undefined
            ? { from: fromName, to: name, reason, manual }
            : { from: fromName, to: name, reason, openUntil, manual },
        );
      } catch {
        // a failing store must not break the call that caused the transition
      }
    }
    if (this.#events?.has('stateChange') || channels.state.hasSubscribers) {
      const e = { name: this.name, from: fromName, to: name, reason, at: now };
      this.#events?.emit('stateChange', e);
      if (channels.state.hasSubscribers) channels.state.publish(e);
    }
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
    if (this.#probeAllowed()) this.#transition(HALF, 'open-duration-elapsed', false, undefined);
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
      this.#e().nextAttemptAt = until ?? this.#clock.now() + this.#openDurationFor(this.#e().openings + 1);
      this.#clearTimer();
      this.#scheduleEager(this.#clock.now());
      return;
    }
    this.#transition(to, reason, false, until);
  }

  openDurationMs(): number {
    return this.#openDurationFor(this.#e().openings + 1);
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

  #restore(v: Validator, raw: unknown): void {
    const s = v.object('initialState', raw);
    if (s.version !== 1) v.fail('initialState.version', '1', s.version);
    const state = v.oneOf('initialState.state', s.state, stateNames);
    const count = (k: string, x: unknown) =>
      x === undefined ? 0 : v.number(`initialState.${k}`, x, { min: 0, integer: true });
    this.#e().openings = count('openings', s.openings);
    this.#consecutive = count('consecutiveFailures', s.consecutiveFailures);
    if (s.openFailures !== undefined) this.#e().openFailures = count('openFailures', s.openFailures);
    const t = v.optionalObject('initialState.totals', s.totals) ?? {};
    this.#successes = count('totals.successes', t.successes);
    this.#failures = count('totals.failures', t.failures);
    this.#rejections = count('totals.rejections', t.rejections);
    this.#neutral = count('totals.neutral', t.neutral);
    this.#slowCalls = count('totals.slowCalls', t.slowCalls);
    const now = this.#clock.now();
    let code = stateCodes[state];
    if (code === HALF) {
      // Nobody is probing any more: come back open, with the next call admitted as a probe.
      code = OPEN;
      this.#e().nextAttemptAt = now;
      this.#e().openedAt = typeof s.openedAt === 'number' ? s.openedAt : now;
    } else if (code === OPEN) {
      // JSON turns an endless open period (openDuration: Infinity) into null.
      this.#e().nextAttemptAt =
        s.nextAttemptAt === null
          ? Number.POSITIVE_INFINITY
          : v.number('initialState.nextAttemptAt', s.nextAttemptAt, {});
      this.#e().openedAt = typeof s.openedAt === 'number' && Number.isFinite(s.openedAt) ? s.openedAt : now;
    }
    this.#state = code;
    if (code === OPEN) this.#scheduleEager(now);
    if (s.window !== undefined) {
      const w = v.object('initialState.window', s.window);
      this.#rule.restore(w as unknown as WindowSnapshot);
    }
  }

  dispose(): void {
    this.#clearTimer();
    this.#rule.dispose();
    const s = this.#session;
    this.#session = undefined;
    if (s !== undefined) {
      try {
        s.detach();
      } catch {
        // ignore: we are leaving
      }
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function parseOpenDuration(v: Validator, raw: unknown): number | Backoff {
  if (raw === undefined) return 30_000;
  if (typeof raw === 'number') return v.number('openDuration', raw, { min: 0 });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return v.fail('openDuration', 'a number >= 0 or { base, max, multiplier, jitter }', raw);
  const o = raw as Record<string, unknown>;
  rejectUnknownKeys(OWNER, o, ['base', 'max', 'multiplier', 'jitter'], 'openDuration.');
  const base = v.number('openDuration.base', o.base, { min: 0 });
  if (!Number.isFinite(base)) v.fail('openDuration.base', 'a finite number >= 0', base);
  const max = v.optionalNumber('openDuration.max', o.max, { min: base }) ?? Math.max(base, 300_000);
  const multiplier = v.optionalNumber('openDuration.multiplier', o.multiplier, { min: 1 }) ?? 2;
  if (!Number.isFinite(multiplier)) v.fail('openDuration.multiplier', 'a finite number >= 1', multiplier);
  const jitter = v.optionalNumber('openDuration.jitter', o.jitter, { min: 0, max: 1 }) ?? 0;
  return { base, max, multiplier, jitter };
}

function parseIsFailure(v: Validator, raw: unknown): ((err: unknown) => boolean) | undefined {
  if (raw === undefined || typeof raw === 'function') return v.optionalFunction('isFailure', raw);
  if (!Array.isArray(raw) || raw.some((c) => typeof c !== 'function'))
    return v.fail('isFailure', 'a function or an array of error classes', raw);
  const classes = raw.slice() as ErrorClass[];
  return (err) => {
    for (let i = 0; i < classes.length; i++) if (err instanceof classes[i]!) return true;
    return false;
  };
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
