/**
 * Fault injection for tests: a function that fails, hangs or slows down on a schedule, driven by
 * the same clock as the policies under test. `import { faulty } from 'tripswitch/testing'`.
 *
 * @module
 */
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * What one call of a {@link faulty} function does.
 *
 * - `'ok'`: resolves with the value.
 * - `'fail'`: rejects with the error.
 * - `'hang'`: never settles by itself; rejects with the signal's reason when `ctx.signal` aborts
 *   (as `fetch` does), so a cooperative timeout ends it.
 * - `{ slow: ms }`: waits `ms` on the clock, then resolves (or rejects, with `result: 'fail'`); an
 *   abort ends the wait early with the signal's reason.
 * - `{ fail: error }`: rejects with this error.
 *
 * @example
 * ```ts
 * const schedule: Fault[] = ['fail', 'hang', { slow: 2_000 }, { fail: new HttpError(503) }, 'ok'];
 * ```
 */
export type Fault = 'ok' | 'fail' | 'hang' | { slow: number; result?: 'ok' | 'fail' } | { fail: unknown };

/**
 * Options of {@link faulty}.
 *
 * @example
 * ```ts
 * faulty({ schedule: ['fail', 'fail', 'ok'], value: { id: 1 }, clock });
 * ```
 */
export interface FaultyOptions<T> {
  /**
   * What each call does: a list in call order (call 1 takes the first entry), or a function of
   * the call number (from 1) and the clock's time, for outages in time:
   * `(call, now) => now < start + 5_000 ? 'fail' : 'ok'`.
   */
  schedule: readonly Fault[] | ((call: number, now: number) => Fault);
  /** What calls past the end of a list schedule do. @default 'ok' */
  afterwards?: Fault;
  /** What a succeeding call resolves with. @default the call number */
  value?: T;
  /** Makes the error of a failing call. @default (call) => new Error(`faulty: call ${call} failed`) */
  error?: (call: number) => unknown;
  /** Drives `slow` waits: give it the TestClock of the policies under test. @default systemClock */
  clock?: Clock;
}

/**
 * One call of a {@link FaultyFunction}, as its `log` keeps it.
 *
 * @example
 * ```ts
 * assert.deepEqual(fn.log.map((c) => c.outcome), ['failed', 'aborted', 'ok']);
 * ```
 */
export interface FaultCall {
  /** 1 for the first call. */
  readonly call: number;
  /** What the schedule said: `'ok'`, `'fail'`, `'hang'` or `'slow'`. */
  readonly fault: 'ok' | 'fail' | 'hang' | 'slow';
  /** Clock time the call started. */
  readonly startedAt: number;
  /** `'pending'` until it settles: `'ok'`, `'failed'`, or `'aborted'` (its signal aborted first). */
  outcome: 'pending' | 'ok' | 'failed' | 'aborted';
  /** Clock time it settled, once it has. */
  settledAt: number | undefined;
}

/**
 * A function made by {@link faulty}: call it as the protected function, `policy.execute(fn)`.
 *
 * @example
 * ```ts
 * const fn = faulty({ schedule: ['fail', 'ok'] });
 * await retry().execute(fn);
 * assert.equal(fn.calls, 2);
 * ```
 */
export interface FaultyFunction<T> {
  (ctx?: { readonly signal?: AbortSignal }): Promise<T>;
  /** Calls so far. */
  readonly calls: number;
  /** Calls started and not yet settled (hanging, or slow and still waiting). */
  readonly inFlight: number;
  /** Every call, in order. */
  readonly log: readonly FaultCall[];
}

const OWNER = 'faulty';
const KEYS = ['schedule', 'afterwards', 'value', 'error', 'clock'] as const;

function checkFault(path: string, f: unknown): Fault {
  if (f === 'ok' || f === 'fail' || f === 'hang') return f;
  if (typeof f === 'object' && f !== null) {
    if ('slow' in f) {
      const v = validator(OWNER);
      v.number(`${path}.slow`, (f as { slow: unknown }).slow, { min: 0 });
      const result = (f as { result?: unknown }).result;
      if (result !== undefined && result !== 'ok' && result !== 'fail')
        v.fail(`${path}.result`, "'ok' or 'fail'", result);
      return f as Fault;
    }
    if ('fail' in f) return f as Fault;
  }
  return validator(OWNER).fail(path, "'ok', 'fail', 'hang', { slow: ms } or { fail: error }", f);
}

/**
 * Makes a function that fails, hangs or slows down on a schedule: the downstream of a test.
 * Hangs and slow calls stop when their signal aborts, as real I/O does, so the timeouts and
 * retries under test see what they would see in production; slow calls wait on `clock`, so a
 * `TestClock` drives them (`await clock.settle(promise)`).
 *
 * @example
 * ```ts
 * import { retry, timeout, wrap } from 'tripswitch';
 * import { TestClock, faulty } from 'tripswitch/testing';
 *
 * const clock = new TestClock();
 * const fn = faulty({ schedule: ['hang', 'fail', 'ok'], value: 'done', clock });
 * const chain = wrap(retry({ maxAttempts: 3, clock }), timeout({ ms: 1_000, clock }));
 * assert.equal(await clock.settle(chain.execute(fn)), 'done');
 * assert.deepEqual(fn.log.map((c) => c.outcome), ['aborted', 'failed', 'ok']);
 * ```
 */
export function faulty<T = number>(options: FaultyOptions<T>): FaultyFunction<T> {
  const v = validator(OWNER);
  const o = v.object('options', options);
  rejectUnknownKeys(OWNER, o, KEYS);
  const schedule = o.schedule as FaultyOptions<T>['schedule'];
  if (Array.isArray(schedule)) for (const [i, f] of schedule.entries()) checkFault(`schedule[${i}]`, f);
  else if (typeof schedule !== 'function')
    v.fail('schedule', 'a list of faults or a function (call, now) => fault', schedule);
  const afterwards = o.afterwards === undefined ? 'ok' : checkFault('afterwards', o.afterwards);
  const makeError =
    v.optionalFunction<(call: number) => unknown>('error', o.error) ??
    ((call: number) => new Error(`faulty: call ${call} failed`));
  const clock = v.clock('clock', o.clock) ?? systemClock;
  const hasValue = 'value' in o;
  const value = o.value as T;
  const log: FaultCall[] = [];
  let inFlight = 0;

  const fn = (ctx?: { readonly signal?: AbortSignal }): Promise<T> => {
    const call = log.length + 1;
    const fault = Array.isArray(schedule)
      ? (schedule[call - 1] ?? afterwards)
      : checkFault(`schedule(${call})`, (schedule as (c: number, now: number) => Fault)(call, clock.now()));
    const kind = (
      typeof fault === 'string' ? fault : 'slow' in fault ? 'slow' : 'fail'
    ) as FaultCall['fault'];
    const entry: FaultCall = {
      call,
      fault: kind,
      startedAt: clock.now(),
      outcome: 'pending',
      settledAt: undefined,
    };
    log.push(entry);
    const result = hasValue ? value : (call as T);
    const error = () => (typeof fault === 'object' && 'fail' in fault ? fault.fail : makeError(call));
    const settle = (outcome: FaultCall['outcome']) => {
      entry.outcome = outcome;
      entry.settledAt = clock.now();
    };
    if (kind === 'ok') {
      settle('ok');
      return Promise.resolve(result);
    }
    if (kind === 'fail') {
      settle('failed');
      return Promise.reject(error());
    }
    const signal = ctx?.signal;
    if (signal?.aborted) {
      settle('aborted');
      return Promise.reject(signal.reason);
    }
    inFlight++;
    return new Promise<T>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const onAbort = () => {
        if (timer !== undefined) clock.clearTimeout(timer);
        inFlight--;
        settle('aborted');
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (kind === 'hang') return;
      const slow = fault as { slow: number; result?: 'ok' | 'fail' };
      timer = clock.setTimeout(() => {
        timer = undefined;
        signal?.removeEventListener('abort', onAbort);
        inFlight--;
        if (slow.result === 'fail') {
          settle('failed');
          reject(makeError(call));
        } else {
          settle('ok');
          resolve(result);
        }
      }, slow.slow);
    });
  };
  Object.defineProperties(fn, {
    calls: { get: () => log.length },
    inFlight: { get: () => inFlight },
    log: { get: () => log },
  });
  return fn as FaultyFunction<T>;
}
