/**
 * What every chaos policy shares: an injection rate, a run-time switch, a random source that can
 * be seeded, counts and an `injected` event. Each policy decides per call, with one draw from the
 * random source, whether to disturb it; a disabled policy or a zero rate draws nothing and passes
 * the call straight through.
 *
 * @module
 */
import { Emitter, type Subscription } from '../emitter.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from '../policy.js';
import type { Validator } from '../validate.js';
import { seededRandom } from './random.js';

/**
 * Options every chaos policy takes.
 *
 * @example
 * ```ts
 * const opts: ChaosOptions = { rate: 0.05, enabled: process.env.GAME_DAY === '1', seed: 7 };
 * ```
 */
export interface ChaosOptions {
  /** The fraction of calls disturbed, 0..1 (changeable later through the policy's `rate`). */
  rate: number;
  /** Whether it injects at all; flip it at run time through the policy's `enabled`. @default true */
  enabled?: boolean;
  /** The random source, numbers in [0, 1). @default Math.random (or `seededRandom(seed)`) */
  random?: () => number;
  /** Seeds the random source (a `seededRandom(seed)`), for runs that repeat exactly. */
  seed?: number;
}

/**
 * Which disturbance a chaos policy injects.
 *
 * @example
 * ```ts
 * const k: ChaosKind = chaosLatency({ rate: 0.1, latencyMs: 500 }).chaos; // 'latency'
 * ```
 */
export type ChaosKind = 'fault' | 'latency' | 'outcome' | 'behavior';

/**
 * Events of a {@link ChaosPolicy}.
 *
 * @example
 * ```ts
 * p.on('injected', ({ chaos }) => metrics.injected.inc({ chaos }));
 * ```
 */
export interface ChaosEvents {
  /** A call was disturbed. */
  injected: { chaos: ChaosKind };
}

/**
 * Counts of a chaos policy.
 *
 * @example
 * ```ts
 * const { calls, injected } = p.stats();
 * ```
 */
export interface ChaosStats {
  /** Calls seen since creation. */
  calls: number;
  /** Calls disturbed since creation. */
  injected: number;
}

/**
 * A chaos policy: composes with `wrap()` like any other.
 *
 * @example
 * ```ts
 * const faults: ChaosPolicy = chaosFault({ rate: 0.1, enabled: false });
 * faults.enabled = true; // game day starts
 * ```
 */
export interface ChaosPolicy extends Policy<PolicyContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'chaos';
  /** What it injects. */
  readonly chaos: ChaosKind;
  /** The switch: set `false` to stop injecting at once (calls in a latency wait keep waiting). */
  enabled: boolean;
  /** The fraction of calls disturbed, 0..1; setting a value outside it throws a RangeError. */
  rate: number;
  stats(): ChaosStats;
  on<K extends keyof ChaosEvents>(event: K, listener: (e: ChaosEvents[K]) => void): Subscription;
  /** @internal */
  readonly contextKeys: readonly string[];
}

/** The option keys every chaos policy accepts. */
export const COMMON_KEYS = ['rate', 'enabled', 'random', 'seed'] as const;
const NO_KEYS: readonly string[] = [];
/** @internal The context handed to `fn` when the caller gave no signal. */
export const plainContext: PolicyContext = Object.freeze({ signal: neverAbortedSignal });

/** @internal */
export abstract class ChaosBase implements ChaosPolicy {
  get kind(): 'chaos' {
    return 'chaos';
  }
  abstract readonly chaos: ChaosKind;
  readonly contextKeys = NO_KEYS;
  #enabled: boolean;
  #rate: number;
  readonly #random: () => number;
  readonly #events = new Emitter<ChaosEvents>();
  #calls = 0;
  #injected = 0;

  constructor(v: Validator, o: Record<string, unknown>) {
    this.#rate = v.number('rate', o.rate, { min: 0, max: 1 });
    this.#enabled = v.optionalBoolean('enabled', o.enabled) ?? true;
    const random = v.optionalFunction<() => number>('random', o.random);
    const seed = v.optionalNumber('seed', o.seed, { integer: true, min: -(2 ** 53), max: 2 ** 53 });
    if (random !== undefined && seed !== undefined) v.fail('seed', 'left out when random is given', seed);
    this.#random = random ?? (seed === undefined ? Math.random : seededRandom(seed));
  }

  get enabled(): boolean {
    return this.#enabled;
  }
  set enabled(on: boolean) {
    if (typeof on !== 'boolean')
      throw new TypeError(`chaos: enabled must be true or false, got ${String(on)}`);
    this.#enabled = on;
  }

  get rate(): number {
    return this.#rate;
  }
  set rate(r: number) {
    if (!(typeof r === 'number' && r >= 0 && r <= 1))
      throw new RangeError(`chaos: rate must be a number >= 0 and <= 1, got ${String(r)}`);
    this.#rate = r;
  }

  stats(): ChaosStats {
    return { calls: this.#calls, injected: this.#injected };
  }

  on<K extends keyof ChaosEvents>(event: K, listener: (e: ChaosEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (signal === neverAbortedSignal) signal = undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.#calls++;
    const ctx = signal === undefined ? plainContext : { signal };
    // `<` so that rate 0 never injects and rate 1 always does (random() is in [0, 1)).
    if (!this.#enabled || this.#rate === 0 || !(this.#random() < this.#rate)) return run(fn, ctx);
    this.#injected++;
    if (this.#events.has('injected')) this.#events.emit('injected', { chaos: this.chaos });
    return this.inject(fn, ctx, signal);
  }

  /** Runs one disturbed call. */
  protected abstract inject<T>(
    fn: (ctx: PolicyContext) => PromiseLike<T> | T,
    ctx: PolicyContext,
    signal: AbortSignal | undefined,
  ): Promise<T>;
}

/** @internal Calls `fn`, turning a synchronous throw into a rejection. */
export function run<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, ctx: PolicyContext): Promise<T> {
  try {
    return Promise.resolve(fn(ctx));
  } catch (err) {
    return Promise.reject(err);
  }
}
