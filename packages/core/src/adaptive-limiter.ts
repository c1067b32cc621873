/**
 * `adaptiveLimiter()`: a concurrency limit that finds the service's knee from measured latency,
 * after Netflix's concurrency-limits Gradient2.
 *
 * Latency is averaged over windows (at least `windowMs` and `minWindowSamples` completions; no
 * timer: a window closes on the completion that ends it). Each window compares its average (the
 * short RTT) with a slow moving average across windows (the long RTT, the latency the service
 * usually has): `gradient = clamp(tolerance * long / short, 0.5, 1)`. While latency stays near
 * its usual level the gradient is 1 and the limit grows by `headroom` (smoothed); once more
 * concurrency only adds queueing, latency rises past `tolerance` times the usual, the gradient
 * falls below 1 and the limit shrinks. A window in which the calls used under half the limit
 * leaves it alone (the load, not the service, was the bound).
 *
 * Calls over the limit wait in a FIFO queue (`maxQueue`, `queueTimeoutMs`), a bulkhead's
 * {@link WaiterQueue}: a doubly linked list, and one clock timer for the queue's head, cleared
 * once nobody waits (an idle limiter holds no timer).
 *
 * @module
 */
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { TripswitchError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';
import { WaiterQueue } from './waiter-queue.js';

const CODE = 'ERR_CONCURRENCY_LIMIT';

/**
 * An adaptive limiter had no free slot and no room in its queue (or the queue wait ran out).
 *
 * @example
 * ```ts
 * if (isConcurrencyLimitError(err)) res.writeHead(503, { 'retry-after': '1' });
 * ```
 */
export class ConcurrencyLimitError extends TripswitchError {
  override readonly name = 'ConcurrencyLimitError';
  readonly code = CODE;
  /** The limit when the call was rejected. */
  readonly limit: number;
  /** `'full'` when rejected at once, `'queue-timeout'` when the queue wait expired. */
  readonly reason: 'full' | 'queue-timeout';
  constructor(limit: number, reason: 'full' | 'queue-timeout') {
    super(
      reason === 'full'
        ? `Concurrency limit reached: ${limit} running and the queue is full`
        : `Concurrency limit queue wait expired (limit ${limit})`,
    );
    this.limit = limit;
    this.reason = reason;
  }
}

/**
 * True when `err` is a {@link ConcurrencyLimitError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isConcurrencyLimitError(err)) metrics.shed.inc({ reason: err.reason });
 * ```
 */
export function isConcurrencyLimitError(err: unknown): err is ConcurrencyLimitError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === CODE;
}

/**
 * Options of {@link adaptiveLimiter}.
 *
 * @example
 * ```ts
 * adaptiveLimiter({ initialLimit: 20, minLimit: 4, maxLimit: 200, maxQueue: 50, queueTimeoutMs: 500 });
 * ```
 */
export interface AdaptiveLimiterOptions {
  /**
   * The limit before anything is measured. Start below the knee: the first windows' latency is
   * taken as the usual one, and a start deep in queueing takes longer to correct. @default 10
   */
  initialLimit?: number;
  /** The limit never goes below this (>= 1). @default 1 */
  minLimit?: number;
  /** The limit never goes above this. @default 1_000 */
  maxLimit?: number;
  /** How much of each window's new estimate is taken (0 < smoothing <= 1). @default 0.2 */
  smoothing?: number;
  /** Latency may reach this multiple of the usual before the limit shrinks (>= 1). @default 1.5 */
  tolerance?: number;
  /** Slots added to the estimate each window, so the limit keeps probing upwards. @default 4 */
  headroom?: number;
  /** Windows the long (usual) latency average spans. @default 60 */
  longWindow?: number;
  /** A window lasts at least this long, in ms. @default 1_000 */
  windowMs?: number;
  /** ...and holds at least this many completed calls. @default 10 */
  minWindowSamples?: number;
  /** Calls waiting for a slot; beyond it calls are rejected at once. @default 0 */
  maxQueue?: number;
  /** How long a call may wait in the queue, in ms. @default Infinity (no limit) */
  queueTimeoutMs?: number;
  /** Whether a queued call's timeout keeps the process alive (see `bulkhead`). @default true */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Counts and estimates of an adaptive limiter.
 *
 * @example
 * ```ts
 * const { limit, running, queued } = limiter.stats();
 * ```
 */
export interface AdaptiveLimiterStats {
  /** The current limit (the estimate, rounded down; at least `minLimit`). */
  limit: number;
  running: number;
  queued: number;
  /** The last window's average latency (ms); `undefined` before the first window closes. */
  shortRtt: number | undefined;
  /** The usual latency (ms); `undefined` before the first window closes. */
  longRtt: number | undefined;
  /** Calls admitted since creation. */
  executed: number;
  /** Calls rejected (full or queue timeout) since creation. */
  rejected: number;
}

/**
 * Events of an {@link AdaptiveLimiterPolicy}.
 *
 * @example
 * ```ts
 * limiter.on('limitChange', ({ from, to }) => log.info({ from, to }, 'concurrency limit'));
 * ```
 */
export interface AdaptiveLimiterEvents {
  /** A window closed and the (rounded) limit changed. */
  limitChange: { from: number; to: number; shortRtt: number; longRtt: number };
  rejected: { reason: 'full' | 'queue-timeout'; limit: number };
}

/**
 * A policy made by {@link adaptiveLimiter}.
 *
 * @example
 * ```ts
 * const limiter: AdaptiveLimiterPolicy = adaptiveLimiter({ maxQueue: 100 });
 * ```
 */
export interface AdaptiveLimiterPolicy extends Policy<PolicyContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'adaptiveLimiter';
  stats(): AdaptiveLimiterStats;
  on<K extends keyof AdaptiveLimiterEvents>(
    event: K,
    listener: (e: AdaptiveLimiterEvents[K]) => void,
  ): Subscription;
  /** @internal */
  readonly contextKeys: readonly string[];
}

const OWNER = 'adaptiveLimiter';
const KEYS = [
  'initialLimit',
  'minLimit',
  'maxLimit',
  'smoothing',
  'tolerance',
  'headroom',
  'longWindow',
  'windowMs',
  'minWindowSamples',
  'maxQueue',
  'queueTimeoutMs',
  'ref',
  'clock',
] as const;
const NO_KEYS: readonly string[] = [];
const plainContext: PolicyContext = Object.freeze({ signal: neverAbortedSignal });

class Limiter implements AdaptiveLimiterPolicy {
  get kind(): 'adaptiveLimiter' {
    return 'adaptiveLimiter';
  }
  readonly contextKeys = NO_KEYS;
  readonly #min: number;
  readonly #max: number;
  readonly #smoothing: number;
  readonly #tolerance: number;
  readonly #headroom: number;
  readonly #longAlpha: number;
  readonly #windowMs: number;
  readonly #minSamples: number;
  readonly #maxQueue: number;
  readonly #queue: WaiterQueue;
  readonly #clock: Clock;
  readonly #events = new Emitter<AdaptiveLimiterEvents>();
  #estimate: number;
  #limit: number;
  #running = 0;
  #executed = 0;
  #rejected = 0;
  // The current window.
  #windowStart: number;
  #samples = 0;
  #sum = 0;
  #maxRunning = 0;
  #short: number | undefined = undefined;
  #long: number | undefined = undefined;

  constructor(opts: AdaptiveLimiterOptions | undefined) {
    const v = validator(OWNER);
    const o = v.optionalObject('options', opts) ?? {};
    rejectUnknownKeys(OWNER, o, KEYS);
    this.#min = v.optionalNumber('minLimit', o.minLimit, { min: 1, integer: true }) ?? 1;
    this.#max =
      v.optionalNumber('maxLimit', o.maxLimit, { min: this.#min, integer: true }) ??
      Math.max(1_000, this.#min);
    const initial =
      v.optionalNumber('initialLimit', o.initialLimit, { min: this.#min, max: this.#max, integer: true }) ??
      Math.min(this.#max, Math.max(this.#min, 10));
    this.#smoothing =
      v.optionalNumber('smoothing', o.smoothing, { min: 0, max: 1, exclusiveMin: true }) ?? 0.2;
    this.#tolerance = v.optionalNumber('tolerance', o.tolerance, { min: 1, max: 100 }) ?? 1.5;
    this.#headroom = v.optionalNumber('headroom', o.headroom, { min: 0, max: 1_000 }) ?? 4;
    const longWindow = v.optionalNumber('longWindow', o.longWindow, { min: 1, max: 100_000 }) ?? 60;
    this.#longAlpha = 2 / (longWindow + 1);
    this.#windowMs = v.optionalNumber('windowMs', o.windowMs, { min: 0, max: 86_400_000 }) ?? 1_000;
    this.#minSamples =
      v.optionalNumber('minWindowSamples', o.minWindowSamples, { min: 1, integer: true }) ?? 10;
    this.#maxQueue = v.optionalNumber('maxQueue', o.maxQueue, { min: 0, integer: true }) ?? 0;
    const queueMs =
      v.optionalNumber('queueTimeoutMs', o.queueTimeoutMs, { min: 0 }) ?? Number.POSITIVE_INFINITY;
    const ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#queue = new WaiterQueue({
      clock: this.#clock,
      queueMs,
      ref,
      idleTimer: 'clear',
      expire: () => this.#reject('queue-timeout'),
    });
    this.#estimate = this.#limit = initial;
    this.#windowStart = this.#clock.now();
  }

  stats(): AdaptiveLimiterStats {
    return {
      limit: this.#limit,
      running: this.#running,
      queued: this.#queue.size,
      shortRtt: this.#short,
      longRtt: this.#long,
      executed: this.#executed,
      rejected: this.#rejected,
    };
  }

  on<K extends keyof AdaptiveLimiterEvents>(
    event: K,
    listener: (e: AdaptiveLimiterEvents[K]) => void,
  ): Subscription {
    return this.#events.on(event, listener);
  }

  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (signal === neverAbortedSignal) signal = undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#limit) return this.#run(fn, signal);
    if (this.#queue.size >= this.#maxQueue) return Promise.reject(this.#reject('full'));
    return new Promise<T>((resolve, reject) =>
      this.#queue.add(signal, fn, resolve as (v: unknown) => void, reject),
    );
  }

  #reject(reason: 'full' | 'queue-timeout'): ConcurrencyLimitError {
    this.#rejected++;
    if (this.#events.has('rejected')) this.#events.emit('rejected', { reason, limit: this.#limit });
    return new ConcurrencyLimitError(this.#limit, reason);
  }

  #run<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal: AbortSignal | undefined): Promise<T> {
    this.#executed++;
    if (++this.#running > this.#maxRunning) this.#maxRunning = this.#running;
    const started = this.#clock.now();
    let r: PromiseLike<T> | T;
    try {
      r = fn(signal === undefined ? plainContext : { signal });
    } catch (err) {
      this.#done(started, signal);
      return Promise.reject(err);
    }
    const p = Promise.resolve(r);
    const release = () => this.#done(started, signal);
    p.then(release, release);
    return p;
  }

  #done(started: number, signal: AbortSignal | undefined): void {
    this.#running--;
    // A call the caller gave up on says nothing about the service's latency.
    if (signal === undefined || !signal.aborted) this.#sample(this.#clock.now() - started);
    while (this.#queue.head !== undefined && this.#running < this.#limit) {
      const w = this.#queue.shift()!;
      w.resolve(this.#run(w.fn, w.signal));
    }
  }

  #sample(ms: number): void {
    this.#samples++;
    this.#sum += ms;
    const now = this.#clock.now();
    if (this.#samples < this.#minSamples || now - this.#windowStart < this.#windowMs) return;
    const short = this.#sum / this.#samples;
    const maxRunning = this.#maxRunning;
    this.#windowStart = now;
    this.#samples = 0;
    this.#sum = 0;
    this.#maxRunning = this.#running;
    this.#update(short, maxRunning);
  }

  #update(short: number, maxRunning: number): void {
    // Latencies of 0 (a clock that did not move) would make every ratio infinite.
    short = Math.max(short, 1e-3);
    let long = this.#long;
    if (long === undefined) long = short;
    // Faster than usual (the service healed, or the first windows were congested): follow quickly.
    else if (short < long) long += 0.5 * (short - long);
    // Slower but within tolerance: the usual drifts up slowly. A congested window (past the
    // tolerance) teaches nothing about the usual latency: counting it would let queueing raise
    // the bar that is meant to detect queueing, and the limit would drift upwards for ever.
    else if (short <= this.#tolerance * long) long += this.#longAlpha * (short - long);
    this.#short = short;
    this.#long = long;
    // The callers, not the service, bounded concurrency: this window says nothing about the limit.
    if (maxRunning < this.#estimate / 2) return;
    const gradient = Math.max(0.5, Math.min(1, (this.#tolerance * long) / short));
    const next = this.#estimate * gradient + this.#headroom;
    this.#estimate = Math.min(
      this.#max,
      Math.max(this.#min, this.#estimate * (1 - this.#smoothing) + next * this.#smoothing),
    );
    const from = this.#limit;
    this.#limit = Math.max(this.#min, Math.floor(this.#estimate));
    if (this.#limit !== from && this.#events.has('limitChange'))
      this.#events.emit('limitChange', { from, to: this.#limit, shortRtt: short, longRtt: long });
  }
}

/**
 * Limits concurrency to a limit it adjusts from measured latency, so the size of a bulkhead need
 * not be guessed: the limit grows while latency stays at its usual level and shrinks once more
 * concurrency only adds queueing (latency past `tolerance` times the usual), so it settles near
 * the service's knee, backs off when the service slows and grows again when it recovers. Calls
 * over the limit wait in a bounded FIFO queue (`maxQueue`, `queueTimeoutMs`) or are rejected with
 * {@link ConcurrencyLimitError}; a waiting call whose signal aborts leaves the queue.
 *
 * @example
 * ```ts
 * import { adaptiveLimiter, isConcurrencyLimitError, wrap, timeout } from 'tripswitch';
 * const limiter = adaptiveLimiter({ minLimit: 4, maxLimit: 500, maxQueue: 100, queueTimeoutMs: 250 });
 * const db = wrap(limiter, timeout({ ms: 2_000 }));
 * const rows = await db.execute(({ signal }) => pool.query(sql, { signal }), req.signal);
 * ```
 */
export function adaptiveLimiter(options?: AdaptiveLimiterOptions): AdaptiveLimiterPolicy {
  return new Limiter(options);
}
