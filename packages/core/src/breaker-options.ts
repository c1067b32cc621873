/**
 * The breaker's options: their types (with the `@default` each one documents), their validation
 * (the exact `InvalidOptionError` messages, checked in the order the options are listed), and the
 * settings derived from them that the breaker reads off the hot path.
 *
 * Validation happens here, before anything is built, so a bad option never leaves a half-made
 * breaker (or a store session) behind.
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import type { PolicyContext } from './policy.js';
import type { BreakerSnapshot } from './breaker-snapshot.js';
import type { BreakerStore } from './breaker-store.js';
import { createTripRule, type TripOptions, type TripRule } from './trip-rules.js';
import { rejectUnknownKeys, type Validator, validator } from './validate.js';

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

/** @internal The validated open-duration backoff: every field filled in. */
export interface Backoff {
  base: number;
  max: number;
  multiplier: number;
  jitter: number;
}

/** @internal Settings read only off the hot path; shared between breakers with equal settings. */
export interface ColdConfig {
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

/** @internal What the constructor builds a breaker from. */
export interface ParsedOptions {
  /** Still needed by the constructor for `initialState`, `metricsOnly` and `store`, in that order. */
  readonly v: Validator;
  readonly o: Record<string, unknown>;
  readonly name: string;
  readonly clock: Clock;
  readonly rule: TripRule;
  readonly cfg: ColdConfig;
}

/** @internal The owner named in every option error. */
export const OWNER = 'circuitBreaker';

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

/**
 * @internal Validates every option up to `isNeutral`, in this order (the first bad one is the one
 * reported). `initialState`, `metricsOnly` and `store` are checked by the constructor afterwards,
 * because checking them means applying them.
 */
export function parseOptions(options: CircuitBreakerOptions | undefined): ParsedOptions {
  const v = validator(OWNER);
  const o = (options === undefined ? {} : v.object('options', options)) as Record<string, unknown>;
  rejectUnknownKeys(OWNER, o, KNOWN);
  const name = o.name === undefined ? 'default' : v.string('name', o.name);
  const clock = v.clock('clock', o.clock) ?? systemClock;
  const rule = createTripRule(v, OWNER, o.trip, clock);
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
  const cfg = coldConfig({
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
  return { v, o, name, clock, rule, cfg };
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

/** @internal The open period for opening number `n` (1-based): the option's number, or its backoff. */
export function openDurationFor(open: number | Backoff, n: number): number {
  if (typeof open === 'number') return open;
  let d = Math.min(open.max, open.base * open.multiplier ** Math.max(0, n - 1));
  if (open.jitter > 0) d -= d * open.jitter * Math.random();
  return d;
}

/**
 * @internal `isNeutral`'s default: the caller's own abort (the signal aborted, and the error is its
 * reason or an `AbortError`). A cancelled call says nothing about the dependency.
 */
export function defaultIsNeutral(err: unknown, ctx: PolicyContext): boolean {
  const s = ctx.signal;
  return (
    s.aborted &&
    (err === s.reason ||
      (typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError'))
  );
}
