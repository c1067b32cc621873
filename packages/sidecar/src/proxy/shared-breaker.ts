/**
 * One breaker decision across the worker threads of `workers: N`: a breaker store (tripswitch's
 * `BreakerStore`) over a SharedArrayBuffer. Each worker keeps its own tripswitch breaker, which
 * counts the outcomes of its own requests and trips on them; every transition is written to the
 * shared words, and every worker reads them before each admission (one `Atomics.load` when
 * nothing changed), so an open breaker is open in every worker from its next request on. The end of
 * the open period is raced for with a lock: one worker wins the half-open state and its probes,
 * the others stay open until it closes or re-opens the breaker, so `half_open_max_calls` probes
 * run across all workers, not per worker.
 * @module
 */
import type {
  BreakerHandle,
  BreakerStore,
  CircuitBreaker,
  CircuitState,
  Clock,
  StoreSession,
} from 'tripswitch';
import { sharedMicros } from '../clock.js';

const SEQ = 0;
const LOCK = 1;
const STATE = 2;
/** 1 + the worker holding the half-open state (its probes), 0 for none. */
const OWNER = 3;
/** 1 + the worker that wrote last, 0 for the main thread. */
const WRITER = 4;
const WORDS = 8;
// BigInt64 words after the Int32 ones
const UNTIL = 0;
const WRITTEN_US = 1;
// Float64 outcome counts per worker after that
const OUTCOMES = 4;

const codes: Record<CircuitState, number> = {
  closed: 0,
  disabled: 1,
  'metrics-only': 2,
  'half-open': 3,
  open: 4,
  isolated: 5,
};
const names = Object.keys(codes) as CircuitState[];
const HALF = 3;
const OPEN = 4;

/** `Atomics.waitAsync`, not yet in the ES2023 lib this package compiles against. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
    ): { async: false } | { async: true; value: Promise<string> };
  }
).waitAsync;

/**
 * The shared words of one cluster's breaker, made by the main thread and handed to every worker.
 *
 * @example
 * ```ts
 * const block = newBreakerBlock(2);
 * ```
 */
export interface BreakerBlock {
  readonly sab: SharedArrayBuffer;
  readonly workers: number;
}

/**
 * A breaker block for `workers` workers: closed.
 *
 * @example
 * ```ts
 * const store = new SharedBreakerStore(newBreakerBlock(2), 0, realClock);
 * ```
 */
export function newBreakerBlock(workers: number): BreakerBlock {
  return { sab: new SharedArrayBuffer(WORDS * 4 + 16 + workers * OUTCOMES * 8), workers };
}

/**
 * The outcomes each worker's breaker recorded (successes, failures, slow ones), for the admin.
 *
 * @example
 * ```ts
 * const [w0, w1] = readOutcomes(block);
 * ```
 */
export function readOutcomes(
  block: BreakerBlock,
): { successes: number; failures: number; slowSuccesses: number; slowFailures: number }[] {
  const f = new Float64Array(block.sab, WORDS * 4 + 16);
  const out = [];
  for (let w = 0; w < block.workers; w++) {
    const o = w * OUTCOMES;
    out.push({ successes: f[o]!, failures: f[o + 1]!, slowSuccesses: f[o + 2]!, slowFailures: f[o + 3]! });
  }
  return out;
}

/**
 * For a worker that is gone: if it held the half-open state, the breaker goes back to open with
 * its open period over, so the next request in any worker becomes the probe. Returns true when it
 * did.
 *
 * @example
 * ```ts
 * worker.on('exit', () => releaseProbe(block, index, Date.now()));
 * ```
 */
export function releaseProbe(block: BreakerBlock, worker: number, now: number): boolean {
  const i = new Int32Array(block.sab, 0, WORDS);
  const t = new BigInt64Array(block.sab, WORDS * 4, 2);
  lock(i);
  const held = Atomics.load(i, STATE) === HALF && Atomics.load(i, OWNER) === worker + 1;
  if (held) {
    Atomics.store(i, STATE, OPEN);
    Atomics.store(i, OWNER, 0);
    Atomics.store(t, UNTIL, BigInt(now));
    Atomics.store(i, WRITER, 0);
    Atomics.store(t, WRITTEN_US, BigInt(sharedMicros()));
    Atomics.add(i, SEQ, 1);
  }
  Atomics.store(i, LOCK, 0);
  if (held) Atomics.notify(i, SEQ);
  return held;
}

// Held for a few word reads or writes only, never across a call out.
function lock(i: Int32Array): void {
  while (Atomics.compareExchange(i, LOCK, 0, 1) !== 0);
}

/**
 * The store of one cluster's breaker in one thread (`worker` -1: the main thread, which only
 * follows and takes the admin's manual states). {@link SharedBreakerStore.sync} is what admission
 * calls; a watcher on the shared sequence word also applies changes at once in a thread with no
 * requests, so the admin and metrics of the main thread follow.
 *
 * @example
 * ```ts
 * const store = new SharedBreakerStore(block, workerIndex, clock);
 * const breaker = circuitBreaker({ name: 'api', store });
 * store.sync(); const permit = breaker.tryAcquire();
 * ```
 */
export class SharedBreakerStore implements BreakerStore {
  readonly #i: Int32Array;
  readonly #t: BigInt64Array;
  readonly #f: Float64Array;
  readonly #me: number;
  readonly #clock: Clock;
  #handle: (BreakerHandle & Partial<Pick<CircuitBreaker, 'nextAttemptAt'>>) | undefined;
  #seen = 0;
  #stopped = false;
  /** Time from the last change written by another thread to when this one applied it, in µs. */
  lastPropagationUs: number | undefined;

  constructor(
    readonly block: BreakerBlock,
    worker: number,
    clock: Clock,
  ) {
    this.#i = new Int32Array(block.sab, 0, WORDS);
    this.#t = new BigInt64Array(block.sab, WORDS * 4, 2);
    this.#f = new Float64Array(block.sab, WORDS * 4 + 16);
    this.#me = worker + 1;
    this.#clock = clock;
  }

  attach(handle: BreakerHandle): StoreSession {
    this.#handle = handle;
    // A worker started (or a breaker made) while the others have it open starts open.
    this.#seen = -1;
    this.sync();
    this.#watch();
    const own = (this.#me - 1) * OUTCOMES;
    return {
      onTransition: (e) => this.#publish(e.to, e.openUntil),
      onOutcome: (o) => {
        if (own < 0) return;
        const k = o === 'success' ? 0 : o === 'failure' ? 1 : o === 'slow-success' ? 2 : 3;
        this.#f[own + k]!++;
      },
      requestProbe: () => this.#claimProbe(),
      detach: () => this.stop(),
    };
  }

  /** Stops the watcher (the breaker left, or the thread is stopping). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#handle = undefined;
    // wakes this thread's watcher, which then sees #stopped (others just wait again)
    Atomics.notify(this.#i, SEQ);
  }

  #publish(to: CircuitState, openUntil: number | undefined): void {
    const i = this.#i;
    lock(i);
    Atomics.store(i, STATE, codes[to]);
    Atomics.store(this.#t, UNTIL, BigInt(Math.round(openUntil ?? 0)));
    // half-open is only reached through #claimProbe, which took the ownership already
    Atomics.store(i, OWNER, to === 'half-open' ? this.#me : 0);
    Atomics.store(i, WRITER, this.#me);
    Atomics.store(this.#t, WRITTEN_US, BigInt(sharedMicros()));
    this.#seen = Atomics.add(i, SEQ, 1) + 1;
    Atomics.store(i, LOCK, 0);
    Atomics.notify(i, SEQ);
  }

  /** The end of an open period: one thread becomes the prober; the others stay open. */
  #claimProbe(): boolean {
    if (this.#me === 0) return false;
    const i = this.#i;
    lock(i);
    const state = Atomics.load(i, STATE);
    let won = false;
    if (state === HALF) won = Atomics.load(i, OWNER) === this.#me;
    else if (state === OPEN && this.#clock.now() >= Number(Atomics.load(this.#t, UNTIL))) {
      Atomics.store(i, STATE, HALF);
      Atomics.store(i, OWNER, this.#me);
      Atomics.store(i, WRITER, this.#me);
      Atomics.store(this.#t, WRITTEN_US, BigInt(sharedMicros()));
      this.#seen = Atomics.add(i, SEQ, 1) + 1;
      won = true;
    }
    Atomics.store(i, LOCK, 0);
    if (won) Atomics.notify(i, SEQ);
    return won;
  }

  /**
   * Brings the local breaker to the shared decision if another thread changed it. Called before
   * every admission: one atomic load when nothing changed.
   */
  sync(): void {
    if (Atomics.load(this.#i, SEQ) !== this.#seen) this.#apply();
  }

  #apply(): void {
    const h = this.#handle;
    if (h === undefined) return;
    const i = this.#i;
    lock(i);
    const seq = Atomics.load(i, SEQ);
    const state = Atomics.load(i, STATE);
    const owner = Atomics.load(i, OWNER);
    const writer = Atomics.load(i, WRITER);
    const until = Number(Atomics.load(this.#t, UNTIL));
    const written = Number(Atomics.load(this.#t, WRITTEN_US));
    Atomics.store(i, LOCK, 0);
    const first = this.#seen === -1;
    this.#seen = seq;
    if (writer === this.#me && !first) return;
    if (seq > 0) this.lastPropagationUs = sharedMicros() - written;
    if (state === OPEN || (state === HALF && owner !== this.#me)) {
      // another worker probes: this one stays open (its open period already over)
      if (h.state !== 'open' || h.nextAttemptAt !== until)
        h.applyRemote({ state: 'open', openUntil: until, reason: 'worker' });
    } else if (state !== HALF) {
      const name = names[state]!;
      if (h.state !== name) h.applyRemote({ state: name, reason: 'worker' });
    }
  }

  #watch(): void {
    const i = this.#i;
    const loop = (): void => {
      while (!this.#stopped) {
        this.sync();
        const r = waitAsync(i, SEQ, this.#seen);
        if (r.async) {
          void r.value.then(loop);
          return;
        }
      }
    };
    loop();
  }
}
