/**
 * `chaosLatency()`: some calls wait before they run.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from '../clock.js';
import type { PolicyContext } from '../policy.js';
import { rejectUnknownKeys, validator } from '../validate.js';
import { ChaosBase, type ChaosOptions, type ChaosPolicy, COMMON_KEYS, run } from './base.js';

/**
 * Options of {@link chaosLatency}.
 *
 * @example
 * ```ts
 * chaosLatency({ rate: 0.1, latencyMs: () => 200 + Math.random() * 800 });
 * ```
 */
export interface ChaosLatencyOptions extends ChaosOptions {
  /** The added wait in ms (>= 0), or a function giving it per call (a negative or NaN answer waits 0). */
  latencyMs: number | ((ctx: PolicyContext) => number);
  /**
   * Whether the wait keeps the process alive, like the `ref` option of Node's `timers/promises`
   * (the caller awaits it). @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

const OWNER = 'chaosLatency';
const KEYS = [...COMMON_KEYS, 'latencyMs', 'ref', 'clock'];

/** One delayed call: the timer's callback and (as `handleEvent`) the caller's abort listener. */
class Wait<T> {
  timer: TimerHandle | undefined = undefined;
  constructor(
    readonly clock: Clock,
    readonly fn: (ctx: PolicyContext) => PromiseLike<T> | T,
    readonly ctx: PolicyContext,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (v: Promise<T>) => void,
    readonly reject: (e: unknown) => void,
  ) {}
  fire(): void {
    this.timer = undefined;
    this.signal?.removeEventListener('abort', this);
    this.resolve(run(this.fn, this.ctx));
  }
  handleEvent(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.signal!.removeEventListener('abort', this);
    this.reject(this.signal!.reason);
  }
}

class Latency extends ChaosBase {
  readonly chaos = 'latency' as const;
  readonly #ms: number | ((ctx: PolicyContext) => number);
  readonly #ref: boolean;
  readonly #clock: Clock;
  constructor(opts: ChaosLatencyOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    super(v, o);
    this.#ms =
      typeof o.latencyMs === 'function'
        ? (o.latencyMs as (ctx: PolicyContext) => number)
        : v.number('latencyMs', o.latencyMs, { min: 0, max: 2_147_483_647 });
    this.#ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
  }
  protected inject<T>(
    fn: (ctx: PolicyContext) => PromiseLike<T> | T,
    ctx: PolicyContext,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    let ms: number;
    try {
      ms = typeof this.#ms === 'number' ? this.#ms : Number(this.#ms(ctx));
    } catch (err) {
      return Promise.reject(err);
    }
    if (!(ms > 0)) ms = 0;
    return new Promise<T>((resolve, reject) => {
      const w = new Wait(this.#clock, fn, ctx, signal, resolve, reject);
      w.timer = this.#clock.setTimeout(() => w.fire(), ms);
      if (!this.#ref) w.timer.unref();
      signal?.addEventListener('abort', w);
    });
  }
}

/**
 * Latency injection: a fraction `rate` of calls wait `latencyMs` (on the policy's clock) before
 * running. The wait ends early when the caller's signal aborts (the call then rejects with its
 * reason and `fn` never runs), so a `timeout` outside it sees a slow dependency, as it would a real one.
 *
 * @example
 * ```ts
 * import { timeout, wrap } from 'tripswitch';
 * import { chaosLatency } from 'tripswitch/chaos';
 * const slow = chaosLatency({ rate: 0.2, latencyMs: 3_000 });
 * const policy = wrap(timeout({ ms: 1_000 }), slow);
 * await policy.execute(({ signal }) => fetch(url, { signal })); // 20% of calls time out
 * ```
 */
export function chaosLatency(options: ChaosLatencyOptions): ChaosPolicy {
  return new Latency(options);
}
