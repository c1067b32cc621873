/**
 * One breaker decision across the worker threads of `workers: N`: a breaker store (tripswitch's
 * `BreakerStore`) over a SharedArrayBuffer. The trip is decided by the main thread's breaker on
 * the outcomes of every worker: each worker forwards its settled calls through its outcome ring
 * (`outcome-ring.ts`) and gives its own breaker nothing to count (its permits settle neutral), so
 * a worker never trips on its share alone. Every transition is written to the shared words, and
 * every worker reads them before each admission (one `Atomics.load` when nothing changed), so an
 * open breaker is open in every worker from its next request on. The end of the open period is
 * raced for with a lock: one worker wins the half-open state and runs all the probes of the
 * period (`half_open_max_calls` across all workers, not per worker) and judges them, the others
 * stay open until it closes or re-opens the breaker.
 * @module
 */
import type {
  BreakerHandle,
  BreakerStore,
  CircuitBreaker,
  CircuitState,
  Clock,
  Permit,
  StoreSession,
  TimerHandle,
} from 'tripswitch';
import { sharedMicros } from '../clock.js';
import { waitAsync } from './atomics-wait.js';
import { OUTCOME, OutcomeRing, RING_BYTES } from './outcome-ring.js';

const SEQ = 0;
const LOCK = 1;
const STATE = 2;
/** 1 + the worker holding the half-open state (its probes), 0 for none. */
const OWNER = 3;
/** 1 + the worker that wrote last, 0 for the main thread. */
const WRITER = 4;
/** Bumped by every outcome a worker forwards; the main thread's drainer waits on it. */
const BELL = 5;
/** 1 while the main thread's drainer is (about to be) asleep on BELL: writers then notify. */
const WAITING = 6;
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
  return {
    sab: new SharedArrayBuffer(WORDS * 4 + 16 + workers * OUTCOMES * 8 + workers * RING_BYTES),
    workers,
  };
}

/**
 * The outcome ring of worker `worker` in a breaker block.
 *
 * @example
 * ```ts
 * const dropped = ringOf(block, 0).dropped;
 * ```
 */
export function ringOf(block: BreakerBlock, worker: number): OutcomeRing {
  return new OutcomeRing(block.sab, WORDS * 4 + 16 + block.workers * OUTCOMES * 8 + worker * RING_BYTES);
}

/**
 * The outcomes each worker's breaker recorded (successes, failures, slow ones), for the admin.
 *
 * @example
 * ```ts
 * const [w0, w1] = readOutcomes(block);
 * ```
 */
export function readOutcomes(block: BreakerBlock): {
  successes: number;
  failures: number;
  slowSuccesses: number;
  slowFailures: number;
  dropped: number;
}[] {
  const f = new Float64Array(block.sab, WORDS * 4 + 16, block.workers * OUTCOMES);
  const out = [];
  for (let w = 0; w < block.workers; w++) {
    const o = w * OUTCOMES;
    out.push({
      successes: f[o]!,
      failures: f[o + 1]!,
      slowSuccesses: f[o + 2]!,
      slowFailures: f[o + 3]!,
      dropped: ringOf(block, w).dropped,
    });
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

/** The failure a forwarded failed call is recorded with in the main thread's breaker. */
const forwardedFailure = Object.freeze(
  Object.assign(new Error('upstream failure (forwarded by a worker)'), { code: 'ERR_SIDECAR_UPSTREAM' }),
);

/**
 * The main thread's breaker clock: real time, except while a forwarded outcome is recorded, when
 * `now()` is moved back by the call's duration for the permit's start, so that the breaker measures
 * the duration the worker measured (slow-call rules, the dashboard's latencies).
 */
class ReplayClock implements Clock {
  shift = 0;
  constructor(readonly base: Clock) {}
  now(): number {
    return this.base.now() - this.shift;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.base.setTimeout(fn, ms);
  }
  clearTimeout(handle: TimerHandle): void {
    this.base.clearTimeout(handle);
  }
}

/**
 * A worker's permit: settles its own breaker's permit as neutral (no local trip) and forwards the
 * outcome to the main thread. A half-open probe is judged where it ran (all the probes of a
 * period run in the worker that holds the half-open state), so it is settled for real.
 */
class ForwardedPermit implements Permit {
  #p: Permit | undefined;
  constructor(
    p: Permit,
    readonly store: SharedBreakerStore,
    readonly period: number,
    readonly start: number,
    readonly probe: boolean,
  ) {
    this.#p = p;
  }
  get settled(): boolean {
    return this.#p === undefined;
  }
  success(): void {
    this.#end(OUTCOME.success, undefined);
  }
  failure(error?: unknown): void {
    this.#end(OUTCOME.failure, error);
  }
  neutral(error?: unknown): void {
    this.#end(OUTCOME.neutral, error);
  }
  #end(kind: number, error: unknown): void {
    const p = this.#p;
    if (p === undefined) return;
    this.#p = undefined;
    if (!this.probe) {
      p.neutral();
      this.store.forward(kind, this.period, this.start);
    } else if (kind === OUTCOME.success) p.success();
    else if (kind === OUTCOME.failure) p.failure(error);
    else p.neutral(error);
  }
}

/**
 * The store of one cluster's breaker in one thread (`worker` -1: the main thread, which takes the
 * trip decision on the outcomes the workers forward, and the admin's manual states). {@link SharedBreakerStore.sync} is what admission
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
  readonly #replay: ReplayClock | undefined;
  /** This worker's ring (workers), or every worker's (the main thread). */
  readonly #rings: OutcomeRing[];
  #handle: (BreakerHandle & Partial<Pick<CircuitBreaker, 'nextAttemptAt' | 'tryAcquire'>>) | undefined;
  #seen = 0;
  #stopped = false;
  /** The worker whose outcome the main thread is recording (-1: none). */
  #from = -1;
  /** Forwarded outcomes recorded by the main thread's breaker, and those of an earlier period. */
  recorded = 0;
  stale = 0;
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
    this.#replay = worker === -1 ? new ReplayClock(clock) : undefined;
    this.#rings =
      worker === -1
        ? Array.from({ length: block.workers }, (_, w) => ringOf(block, w))
        : [ringOf(block, worker)];
  }

  /** The clock the thread's breaker must be made with (the main thread's replays durations). */
  get breakerClock(): Clock {
    return this.#replay ?? this.#clock;
  }

  /**
   * A worker's admission: wraps the permit its breaker gave so that the outcome goes to the main
   * thread's decision (`probe`: the breaker is half-open, the call is a probe judged here).
   */
  permit(p: Permit, probe: boolean): Permit {
    return new ForwardedPermit(p, this, this.#seen, this.#clock.now(), probe);
  }

  /** Writes one outcome to this worker's ring and wakes the main thread's drainer if it sleeps. */
  forward(kind: number, period: number, start: number): void {
    this.#rings[0]!.push(kind, period, this.#clock.now() - start);
    const i = this.#i;
    Atomics.add(i, BELL, 1);
    if (Atomics.load(i, WAITING) !== 0) Atomics.notify(i, BELL);
  }

  attach(handle: BreakerHandle): StoreSession {
    this.#handle = handle;
    // A worker started (or a breaker made) while the others have it open starts open.
    this.#seen = -1;
    this.sync();
    this.#watch();
    if (this.#me === 0) this.#drainLoop();
    return {
      onTransition: (e) => this.#publish(e.to, e.openUntil),
      onOutcome: (o) => {
        // a worker's own outcomes are its probes; the main thread's are those it was forwarded
        const w = this.#me === 0 ? this.#from : this.#me - 1;
        if (w < 0) return;
        const k = o === 'success' ? 0 : o === 'failure' ? 1 : o === 'slow-success' ? 2 : 3;
        this.#f[w * OUTCOMES + k]!++;
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
    // wakes this thread's watcher and drainer, which then see #stopped (others just wait again)
    Atomics.notify(this.#i, SEQ);
    Atomics.notify(this.#i, BELL);
  }

  /**
   * The main thread: records every outcome the workers forwarded since the last drain, worker by
   * worker, in its breaker (the one trip decision). Outcomes of calls admitted in an earlier period
   * (before the last transition) are counted as stale and not recorded, as a breaker ignores the
   * outcomes of an earlier generation. Returns how many outcomes were read.
   */
  drain(): number {
    if (this.#handle === undefined) return 0;
    this.sync();
    let n = 0;
    for (let w = 0; w < this.#rings.length; w++) {
      this.#from = w;
      n += this.#rings[w]!.drain(this.#record);
    }
    this.#from = -1;
    return n;
  }

  readonly #record = (kind: number, period: number, durationMs: number): void => {
    const b = this.#handle;
    if (b?.tryAcquire === undefined) return;
    // Admitted before the last transition (or while another thread had it half-open: those
    // are the probes, judged where they ran): not this period's.
    const s = b.state;
    if (period !== this.#seen || s === 'open' || s === 'half-open' || s === 'isolated') {
      this.stale++;
      return;
    }
    const clock = this.#replay!;
    clock.shift = durationMs;
    const p = b.tryAcquire();
    clock.shift = 0;
    if (p === undefined) return;
    this.recorded++;
    if (kind === OUTCOME.success) p.success();
    else if (kind === OUTCOME.failure) p.failure(forwardedFailure);
    else p.neutral();
  };

  #drainLoop(): void {
    const i = this.#i;
    const loop = (): void => {
      while (!this.#stopped) {
        Atomics.store(i, WAITING, 0);
        const bell = Atomics.load(i, BELL);
        this.drain();
        // Set before the wait reads BELL: a worker that bumps BELL after it either changed the
        // value the wait compares (no sleep) or sees WAITING and notifies.
        Atomics.store(i, WAITING, 1);
        const r = waitAsync(i, BELL, bell);
        if (r.async) {
          void r.value.then(loop);
          return;
        }
      }
    };
    loop();
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

  /**
   * Starts a new period without a transition, as `reset()` of a closed breaker does in its own
   * thread: the workers' calls admitted before it are then of an earlier period and not recorded.
   * The main thread calls it after such a reset.
   */
  newPeriod(): void {
    const i = this.#i;
    lock(i);
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
