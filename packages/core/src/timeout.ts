/**
 * `timeout()`: a deadline for each call.
 *
 * Cheap by construction: a call whose function never reads `ctx.signal` gets no
 * `AbortController`, and no call gets a timer of its own. Every call of one policy has the same
 * duration, so deadlines arrive in order: the pending calls form a linked list sorted by deadline
 * for free (append at the tail, unlink in O(1) when a call settles), and one clock timer, armed
 * for the head, serves them all. The timer is re-armed only when it fires, for the new head; when
 * the list is empty it is not re-armed, so an idle policy holds no timer (at most one unref'd
 * timer outlives the last call, by at most `ms`).
 *
 * The timer keeps the process alive only while some caller's promise depends on it: an aggressive
 * call in flight, or a cooperative call whose function took `ctx.signal` (the abort may be what
 * settles it). A cooperative call that never read the signal settles when its function does,
 * whatever the timer does, so the common path never touches the timer's ref.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { TimeoutError } from './errors.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * Options of {@link timeout}.
 *
 * @example
 * ```ts
 * const t = timeout({ ms: 2_000, strategy: 'aggressive' });
 * ```
 */
export interface TimeoutOptions {
  /** The deadline in milliseconds from the start of each call (> 0). */
  ms: number;
  /**
   * `'cooperative'`: at the deadline the signal handed to `fn` aborts (with a `TimeoutError` as
   * its reason) and the call settles when `fn` does; if `fn` then rejects, the call rejects with
   * `TimeoutError` (the function's error as `cause`), if it resolves, its value is returned.
   * `'aggressive'`: at the deadline the call rejects with `TimeoutError` at once (the signal
   * aborts too), and whatever `fn` does later is ignored.
   * @default 'cooperative'
   */
  strategy?: 'cooperative' | 'aggressive';
  /**
   * Whether a deadline that a caller's promise depends on keeps the process alive, like the `ref`
   * option of Node's `timers/promises`: an aggressive call in flight, or a cooperative call whose
   * function took `ctx.signal`. `false` lets the process exit before such a call's deadline.
   * @default true
   */
  ref?: boolean;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link TimeoutPolicy}.
 *
 * @example
 * ```ts
 * t.on('timeout', ({ ms }) => metrics.timeouts.inc());
 * ```
 */
export interface TimeoutEvents {
  /** A call reached its deadline. */
  timeout: { ms: number };
}

/**
 * A policy made by {@link timeout}.
 *
 * @example
 * ```ts
 * const t = timeout({ ms: 500 });
 * await t.execute(({ signal }) => fetch(url, { signal }));
 * ```
 */
export interface TimeoutPolicy extends Policy<PolicyContext> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'timeout';
  readonly ms: number;
  readonly strategy: 'cooperative' | 'aggressive';
  /** Calls started and not yet settled. */
  readonly pending: number;
  on<K extends keyof TimeoutEvents>(event: K, listener: (e: TimeoutEvents[K]) => void): Subscription;
  /** @internal Context keys this policy adds to a `wrap()` context (none). */
  readonly contextKeys: readonly string[];
}

const OWNER = 'timeout';
const KEYS = ['ms', 'strategy', 'ref', 'clock'] as const;
const NO_KEYS: readonly string[] = [];

// Call states.
const RUNNING = 0;
const EXPIRED = 1;
const DONE = 2;

/**
 * One call: the context handed to `fn`, a node of the deadline list, and (as `handleEvent`) the
 * listener on the caller's signal, so a call allocates one object besides its promise.
 */
class Call implements PolicyContext {
  prev: Call | undefined = undefined;
  next: Call | undefined = undefined;
  readonly deadline: number;
  readonly owner: Timeout;
  readonly caller: AbortSignal | undefined;
  state = RUNNING;
  ctl: AbortController | undefined = undefined;
  listening = false;
  /** The caller's promise may depend on the deadline timer (see Timeout.hold). */
  held = false;
  resolve: ((v: unknown) => void) | undefined = undefined;
  reject: ((e: unknown) => void) | undefined = undefined;

  constructor(owner: Timeout, deadline: number, caller: AbortSignal | undefined) {
    this.owner = owner;
    this.deadline = deadline;
    this.caller = caller;
  }

  get signal(): AbortSignal {
    let c = this.ctl;
    if (c !== undefined) return c.signal;
    c = this.ctl = new AbortController();
    if (this.state === EXPIRED) c.abort(this.owner.error());
    else {
      // fn holds the signal now: the deadline's abort may be what settles the call.
      if (this.state === RUNNING) this.owner.hold(this);
      if (this.caller !== undefined) {
        if (this.caller.aborted) c.abort(this.caller.reason);
        else if (this.state === RUNNING && !this.listening) {
          this.listening = true;
          this.caller.addEventListener('abort', this);
        }
      }
    }
    return c.signal;
  }

  /** The caller's signal aborted. */
  handleEvent(): void {
    if (this.state === DONE) return;
    const reason = this.caller!.reason;
    this.ctl?.abort(reason);
    if (this.reject !== undefined) {
      // Aggressive: the caller does not wait for a function that may ignore its signal.
      const rej = this.reject;
      this.finish();
      rej(reason);
    }
  }

  expire(): void {
    this.state = EXPIRED;
    const err = this.owner.error();
    this.ctl?.abort(err);
    if (this.reject !== undefined) {
      const rej = this.reject;
      this.finish();
      rej(err);
    }
  }

  /** Leaves the list, drops the caller listener. Idempotent. */
  finish(): void {
    if (this.state === DONE) return;
    if (this.state === RUNNING) this.owner.unlink(this);
    if (this.held) {
      this.held = false;
      this.owner.release();
    }
    this.state = DONE;
    this.resolve = this.reject = undefined;
    if (this.listening) {
      this.listening = false;
      this.caller!.removeEventListener('abort', this);
    }
  }
}

class Timeout implements TimeoutPolicy {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'timeout' {
    return 'timeout';
  }

  readonly ms: number;
  readonly strategy: 'cooperative' | 'aggressive';
  readonly contextKeys = NO_KEYS;
  readonly #clock: Clock;
  readonly #aggressive: boolean;
  readonly #ref: boolean;
  readonly #events = new Emitter<TimeoutEvents>();
  #head: Call | undefined = undefined;
  #tail: Call | undefined = undefined;
  #count = 0;
  #timer: TimerHandle | undefined = undefined;
  /** Pending calls whose caller's promise the timer may settle; the timer is ref'd while > 0. */
  #held = 0;
  #sweeping = false;
  readonly #onTimer = () => this.#fire();

  constructor(opts: TimeoutOptions) {
    const v = validator(OWNER);
    const o = v.object('options', opts);
    rejectUnknownKeys(OWNER, o, KEYS);
    this.ms = v.number('ms', o.ms, { min: 0, exclusiveMin: true, max: 2_147_483_647 });
    this.strategy =
      o.strategy === undefined
        ? 'cooperative'
        : v.oneOf('strategy', o.strategy, ['cooperative', 'aggressive']);
    this.#aggressive = this.strategy === 'aggressive';
    this.#ref = v.optionalBoolean('ref', o.ref) ?? true;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
  }

  get pending(): number {
    return this.#count;
  }

  on<K extends keyof TimeoutEvents>(event: K, listener: (e: TimeoutEvents[K]) => void): Subscription {
    return this.#events.on(event, listener);
  }

  /** @internal */
  error(): TimeoutError {
    return new TimeoutError(this.ms);
  }

  execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    let caller: AbortSignal | undefined;
    if (signal !== undefined && signal !== neverAbortedSignal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      caller = signal;
    }
    const call = new Call(this, this.#clock.now() + this.ms, caller);
    this.#link(call);
    let r: PromiseLike<T> | T;
    try {
      r = fn(call);
    } catch (err) {
      return Promise.reject(this.#settleError(call, err));
    }
    if (r === null || typeof r !== 'object' || typeof (r as PromiseLike<T>).then !== 'function') {
      call.finish();
      return Promise.resolve(r as T);
    }
    if (this.#aggressive) {
      return new Promise<T>((resolve, reject) => {
        if (call.state !== RUNNING) {
          const expired = call.state === EXPIRED;
          call.finish();
          reject(expired ? this.error() : caller?.reason);
          return;
        }
        if (caller?.aborted) {
          // The caller aborted while fn ran synchronously: do not wait for fn.
          call.finish();
          reject(caller.reason);
          return;
        }
        call.resolve = resolve as (v: unknown) => void;
        call.reject = reject;
        this.hold(call);
        if (caller !== undefined && !call.listening) {
          call.listening = true;
          caller.addEventListener('abort', call);
        }
        (r as PromiseLike<T>).then(
          (v) => {
            const res = call.resolve;
            if (res === undefined) return;
            call.finish();
            res(v);
          },
          (e) => {
            const rej = call.reject;
            if (rej === undefined) return;
            call.finish();
            rej(e);
          },
        );
      });
    }
    return Promise.resolve(r).then(
      (v) => {
        call.finish();
        return v;
      },
      (e) => {
        throw this.#settleError(call, e);
      },
    );
  }

  #settleError(call: Call, err: unknown): unknown {
    const expired = call.state === EXPIRED;
    call.finish();
    if (!expired) return err;
    const t = this.error();
    if (err !== undefined && !(err instanceof TimeoutError)) (t as { cause?: unknown }).cause = err;
    return t;
  }

  #link(call: Call): void {
    this.#count++;
    const tail = this.#tail;
    if (tail === undefined) this.#head = call;
    else {
      tail.next = call;
      call.prev = tail;
    }
    this.#tail = call;
    // An armed timer is due no later than this deadline (deadlines only grow), so it will see it.
    if (this.#timer === undefined && !this.#sweeping) this.#arm(this.ms);
  }

  /** @internal */
  unlink(call: Call): void {
    this.#count--;
    const { prev, next } = call;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    call.prev = call.next = undefined;
    // The timer stays armed: clearing and re-arming it on every settle would be a timer per call.
  }

  /** @internal A caller's promise now depends on the deadline of `call`. */
  hold(call: Call): void {
    call.held = true;
    if (this.#held++ === 0 && this.#ref) this.#timer?.ref?.();
  }

  /** @internal A held call settled. */
  release(): void {
    if (--this.#held === 0 && this.#ref) this.#timer?.unref();
  }

  #arm(ms: number): void {
    const t = this.#clock.setTimeout(this.#onTimer, ms);
    if (this.#held === 0 || !this.#ref) t.unref();
    this.#timer = t;
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    this.#sweeping = true;
    try {
      for (let c = this.#head; c !== undefined && c.deadline <= now; c = this.#head) {
        this.unlink(c);
        c.expire();
        if (this.#events.has('timeout')) this.#events.emit('timeout', { ms: this.ms });
      }
    } finally {
      this.#sweeping = false;
    }
    const head = this.#head;
    if (head !== undefined) this.#arm(Math.max(1, head.deadline - now));
  }
}

/**
 * A deadline for each call: `TimeoutError` when `ms` passes first.
 *
 * Put it innermost (`breaker(timeout(fn))`) so each attempt has its own deadline and the breaker
 * counts timeouts as failures. Give `ctx.signal` to the work you start so it stops at the deadline;
 * a function that never reads it costs no `AbortController`.
 *
 * @example
 * ```ts
 * import { timeout, isTimeoutError } from 'tripswitch';
 * const t = timeout({ ms: 1_000 });
 * try {
 *   await t.execute(({ signal }) => fetch(url, { signal }), req.signal);
 * } catch (err) {
 *   if (isTimeoutError(err)) res.statusCode = 504;
 * }
 * ```
 */
export function timeout(options: TimeoutOptions): TimeoutPolicy {
  return new Timeout(options);
}
