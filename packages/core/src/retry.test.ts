import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import {
  CircuitOpenError,
  circuitBreaker,
  constantBackoff,
  decorrelatedJitterBackoff,
  exponentialBackoff,
  fullJitterBackoff,
  isInvalidOptionError,
  type RetryEvents,
  retry,
  retryBudget,
} from './index.js';
import { TestClock } from './test-clock.js';

const seq = (...xs: number[]) => {
  let i = 0;
  return () => xs[i++ % xs.length]!;
};

describe('backoff', () => {
  it('constant, exponential with cap, full jitter, decorrelated jitter', () => {
    const r = seq(0.5);
    assert.deepEqual(
      [1, 2, 3].map((n) => constantBackoff(7).delay(n, 0, r)),
      [7, 7, 7],
    );
    const e = exponentialBackoff({ initialDelay: 100, multiplier: 2, maxDelay: 350 });
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => e.delay(n, 0, r)),
      [100, 200, 350, 350],
    );
    const f = fullJitterBackoff({ initialDelay: 100, maxDelay: 1000 });
    assert.deepEqual(
      [1, 2, 3].map((n) => f.delay(n, 0, r)),
      [50, 100, 200],
    );
    const d = decorrelatedJitterBackoff({ initialDelay: 100, maxDelay: 1000 });
    assert.equal(
      d.delay(1, 0, () => 0.5),
      100,
    );
    assert.equal(
      d.delay(2, 200, () => 0.5),
      100 + 0.5 * (600 - 100),
    );
    assert.equal(
      d.delay(3, 900, () => 0.99),
      1000,
    );
    assert.throws(
      () => exponentialBackoff({ initialDelay: 100, maxDelay: 50 }),
      /option "maxDelay" must be a number >= 100, got 50/,
    );
    assert.throws(() => constantBackoff(-1), /option "ms"/);
  });
});

describe('retry', () => {
  it('validates options', () => {
    assert.throws(
      () => retry({ maxAttempts: 0 }),
      (e: unknown) =>
        isInvalidOptionError(e) && /"maxAttempts" must be an integer >= 1, got 0/.test(String(e)),
    );
    assert.throws(() => retry({ backoff: 5 as never }), /option "backoff"/);
    assert.throws(() => retry({ retries: 3 } as never), /option "retries"/);
    assert.throws(() => retry({ budget: { percent: -1 } }), /retryBudget: option "percent"/);
  });

  it('retries with the backoff delays and hands ctx.attempt', async () => {
    const clock = new TestClock();
    const r = retry({ maxAttempts: 4, backoff: exponentialBackoff({ initialDelay: 100 }), clock });
    const events: RetryEvents['retry'][] = [];
    r.on('retry', (e) => events.push(e));
    const attempts: number[] = [];
    const p = r.execute(async ({ attempt }) => {
      attempts.push(attempt);
      if (attempt < 4) throw new Error(`fail ${attempt}`);
      return 'ok';
    });
    await clock.advanceAsync(99);
    assert.deepEqual(attempts, [1]);
    await clock.advanceAsync(1);
    assert.deepEqual(attempts, [1, 2]);
    await clock.advanceAsync(200 + 400);
    assert.equal(await p, 'ok');
    assert.deepEqual(attempts, [1, 2, 3, 4]);
    assert.deepEqual(
      events.map((e) => [e.attempt, e.delay, (e.error as Error).message]),
      [
        [1, 100, 'fail 1'],
        [2, 200, 'fail 2'],
        [3, 400, 'fail 3'],
      ],
    );
    assert.equal(clock.pending, 0);
  });

  it('gives up after maxAttempts, rethrowing the last error', async () => {
    const clock = new TestClock();
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(10), clock });
    const gave: RetryEvents['giveUp'][] = [];
    r.on('giveUp', (e) => gave.push(e));
    let n = 0;
    const p = r.execute(() => {
      throw new Error(`e${++n}`);
    });
    await clock.advanceAsync(10);
    await assert.rejects(p, /e2/);
    assert.equal(gave[0]!.reason, 'max-attempts');
    assert.equal(gave[0]!.attempts, 2);
  });

  it('shouldRetry false stops at once', async () => {
    const r = retry({
      maxAttempts: 5,
      shouldRetry: (e) => (e as Error).message !== 'fatal',
      clock: new TestClock(),
    });
    let n = 0;
    await assert.rejects(
      r.execute(() => {
        n++;
        throw new Error('fatal');
      }),
      /fatal/,
    );
    assert.equal(n, 1);
  });

  it('handleResult retries failed results and returns the last one', async () => {
    const clock = new TestClock();
    const r = retry({
      maxAttempts: 3,
      backoff: constantBackoff(5),
      handleResult: (v) => (v as number) >= 500,
      clock,
    });
    let n = 0;
    const p = r.execute(async () => [503, 500, 502][n++]!);
    await clock.advanceAsync(10);
    assert.equal(await p, 502);
    assert.equal(n, 3);
    n = 0;
    const q = r.execute(async () => [503, 200][n++]!);
    await clock.advanceAsync(5);
    assert.equal(await q, 200);
  });

  it('honours retryAfter on the error, capped by maxDelay', async () => {
    const clock = new TestClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(1), maxDelay: 5_000, clock });
    const delays: number[] = [];
    r.on('retry', (e) => delays.push(e.delay));
    let n = 0;
    const p = r.execute(async () => {
      n++;
      if (n === 1) throw Object.assign(new Error('busy'), { retryAfter: 2_000 });
      if (n === 2) throw Object.assign(new Error('busy'), { retryAfter: 60_000 });
      return n;
    });
    await clock.advanceAsync(1_999);
    assert.equal(n, 1);
    await clock.advanceAsync(1);
    assert.equal(n, 2);
    await clock.advanceAsync(5_000);
    assert.equal(await p, 3);
    assert.deepEqual(delays, [2_000, 5_000]);
  });

  it('never retries CircuitOpenError unless retryOnCircuitOpen, then waits its retryAfter', async () => {
    const clock = new TestClock();
    const breaker = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 1_000,
    });
    breaker.acquire().failure(new Error('down'));
    let n = 0;
    const gave: string[] = [];
    const r1 = retry({ maxAttempts: 5, clock });
    r1.on('giveUp', (e) => gave.push(e.reason));
    await assert.rejects(
      r1.execute(() => breaker.execute(() => ++n)),
      (e: unknown) => e instanceof CircuitOpenError,
    );
    assert.deepEqual(gave, ['circuit-open']);
    assert.equal(n, 0);
    const r2 = retry({ maxAttempts: 2, retryOnCircuitOpen: true, backoff: constantBackoff(1), clock });
    const p = r2.execute(() => breaker.execute(() => ++n));
    await clock.advanceAsync(1_000);
    assert.equal(await p, 1);
  });

  it('abort during the backoff sleep rejects with the reason, clears the timer and the listener', async () => {
    const clock = new TestClock();
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(10_000), clock });
    const ac = new AbortController();
    let n = 0;
    const p = r.execute(() => {
      n++;
      throw new Error('x');
    }, ac.signal);
    await clock.advanceAsync(0);
    assert.equal(clock.pending, 1);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('cancelled'));
    await assert.rejects(p, /cancelled/);
    assert.equal(clock.pending, 0);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    assert.equal(n, 1);
  });

  it('a caller abort is not retried', async () => {
    const r = retry({ maxAttempts: 5, clock: new TestClock() });
    const ac = new AbortController();
    let n = 0;
    await assert.rejects(
      r.execute(() => {
        n++;
        ac.abort(new Error('gone'));
        throw ac.signal.reason;
      }, ac.signal),
      /gone/,
    );
    assert.equal(n, 1);
  });

  it('the retry budget caps retries at percent of calls plus the minimum, and ages out', async () => {
    const clock = new TestClock(0);
    const budget = retryBudget({
      percent: 10,
      minRetriesPerSecond: 0.2,
      windowMs: 10_000,
      buckets: 10,
      clock,
    });
    // min = 0.2 * 10 = 2 retries per window.
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(0), budget, clock });
    const gave: string[] = [];
    r.on('giveUp', (e) => gave.push(e.reason));
    const fail = () => r.execute(() => Promise.reject(new Error('down'))).catch(() => {});
    for (let i = 0; i < 10; i++) await fail();
    // 10 calls: allowed = 2 + 1 = 3 retries.
    assert.equal(budget.stats().retries, 3);
    assert.equal(gave.filter((g) => g === 'budget').length, 7);
    assert.deepEqual(budget.stats(), { calls: 10, retries: 3, allowed: 3 });
    clock.advance(10_000);
    assert.deepEqual(budget.stats(), { calls: 0, retries: 0, allowed: 2 });
    assert.equal(budget.tryRetry(), true);
  });
});

describe('retry: waits that keep the process alive', () => {
  it("the backoff sleep is ref'd unless ref: false", async () => {
    const clock = new TestClock();
    for (const ref of [undefined, true, false]) {
      let n = 0;
      const r = retry({
        maxAttempts: 2,
        backoff: constantBackoff(100),
        clock,
        ...(ref === undefined ? {} : { ref }),
      });
      const p = r.execute(() => (++n === 1 ? Promise.reject(new Error('x')) : n));
      await clock.advanceAsync(0);
      assert.deepEqual([clock.pending, clock.refed], [1, ref === false ? 0 : 1], `ref: ${ref}`);
      await clock.advanceAsync(100);
      assert.equal(await p, 2);
      assert.equal(clock.pending, 0);
    }
    assert.throws(() => retry({ ref: 0 as unknown as boolean }), /option "ref" must be true or false/);
  });

  it("a timer that fires early (the event loop's stale time) does not cut the wait short", async () => {
    // Node starts a timer from the loop's cached time, which lags now() by the current turn's
    // work: such a timer fires a few ms early by the clock. Waiting out an open breaker's
    // retryAfter must not arrive while it is still open.
    const inner = new TestClock();
    const early = {
      now: () => inner.now(),
      setTimeout: (fn: () => void, ms: number) => inner.setTimeout(fn, ms > 3 ? ms - 3 : ms),
      clearTimeout: (h: Parameters<typeof inner.clearTimeout>[0]) => inner.clearTimeout(h),
    };
    const b = circuitBreaker({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 30, clock: early });
    await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    const r = retry({ maxAttempts: 2, retryOnCircuitOpen: true, clock: early });
    const p = r.execute(() => b.execute(() => 'after open'));
    for (let i = 0; i < 5 && inner.pending > 0; i++) await inner.advanceAsync(30);
    assert.equal(await p, 'after open');
  });
});

describe('retry: guarantees pinned by mutation testing', () => {
  it('handleResult after a thrown first attempt: the later value is returned, never undefined', async () => {
    const clock = new TestClock();
    const run = async (results: Array<Error | string>, maxAttempts: number) => {
      let i = 0;
      const r = retry({ maxAttempts, backoff: constantBackoff(10), clock, handleResult: (v) => v === 'bad' });
      const p = r.execute(() => {
        const x = results[i++]!;
        if (x instanceof Error) throw x;
        return x;
      });
      return clock.settle(p);
    };
    assert.equal(await run([new Error('x'), 'bad'], 2), 'bad', 'the last failed result, as documented');
    assert.equal(await run([new Error('x'), 'good'], 3), 'good');
    assert.equal(await run([new Error('x'), 'bad', 'good'], 3), 'good');
    await assert.rejects(run(['bad', new Error('last')], 2), /last/, 'a thrown last attempt rethrows');
  });

  it('an already aborted signal rejects with its reason and never runs the first attempt', async () => {
    let ran = 0;
    const reason = new Error('caller gone');
    await assert.rejects(
      retry({ maxAttempts: 3 }).execute(() => {
        ran++;
        return 1;
      }, AbortSignal.abort(reason)),
      (e) => e === reason,
    );
    assert.equal(ran, 0);
  });

  it('the budget ages out one bucket at a time, not the whole window', () => {
    const clock = new TestClock(0);
    const budget = retryBudget({ percent: 100, minRetriesPerSecond: 0, windowMs: 1_000, buckets: 10, clock });
    for (let b = 0; b < 10; b++) {
      budget.recordCall();
      budget.recordCall();
      assert.equal(budget.tryRetry(), true);
      clock.advance(100);
    }
    // t = 1000: the first bucket (t 0..100) just left; nine buckets remain.
    assert.deepEqual(budget.stats(), { calls: 18, retries: 9, allowed: 18 });
    clock.advance(100);
    assert.deepEqual(budget.stats(), { calls: 16, retries: 8, allowed: 16 });
    clock.advance(450);
    assert.deepEqual(budget.stats(), { calls: 8, retries: 4, allowed: 8 });
    clock.advance(10_000);
    assert.deepEqual(budget.stats(), { calls: 0, retries: 0, allowed: 0 });
    // A bucket is reused once it left the window: counts start from zero there.
    budget.recordCall();
    assert.deepEqual(budget.stats(), { calls: 1, retries: 0, allowed: 1 });
  });
});

describe('retry: details pinned by mutation testing', () => {
  it("names every bad option, its own and its budget's", () => {
    const cases: Array<[() => unknown, string]> = [
      [() => retry(1 as never), 'retry: option "options" must be an object, got 1'],
      [() => retry({ maxAttempts: 1.5 }), 'retry: option "maxAttempts" must be an integer >= 1, got 1.5'],
      [
        () => retry({ backoff: {} as never }),
        'retry: option "backoff" must be a Backoff ({ delay(retry, previous, random) }), got {}',
      ],
      [
        () => retry({ maxDelay: -1 }),
        'retry: option "maxDelay" must be a number >= 0 and <= 2147483647, got -1',
      ],
      [() => retry({ shouldRetry: 1 as never }), 'retry: option "shouldRetry" must be a function, got 1'],
      [() => retry({ handleResult: 1 as never }), 'retry: option "handleResult" must be a function, got 1'],
      [
        () => retry({ retryOnCircuitOpen: 1 as never }),
        'retry: option "retryOnCircuitOpen" must be true or false, got 1',
      ],
      [() => retry({ budget: 1 as never }), 'retry: option "budget" must be an object, got 1'],
      [() => retry({ random: 1 as never }), 'retry: option "random" must be a function, got 1'],
      [() => retry({ clock: {} as never }), 'retry: option "clock" must be a Clock'],
      [
        () => retry({ extra: 1 } as never),
        'retry: option "extra" must be one of the known options (maxAttempts, backoff, maxDelay, shouldRetry, handleResult, retryOnCircuitOpen, budget, random, ref, clock), got 1',
      ],
      [() => retryBudget(1 as never), 'retryBudget: option "options" must be an object, got 1'],
      [
        () => retryBudget({ percent: 1001 }),
        'retryBudget: option "percent" must be a number >= 0 and <= 1000, got 1001',
      ],
      [
        () => retryBudget({ minRetriesPerSecond: -1 }),
        'retryBudget: option "minRetriesPerSecond" must be a number >= 0, got -1',
      ],
      [
        () => retryBudget({ windowMs: 0 }),
        'retryBudget: option "windowMs" must be a number >= 1 and <= 86400000, got 0',
      ],
      [
        () => retryBudget({ buckets: 1.5 }),
        'retryBudget: option "buckets" must be an integer >= 1 and <= 1000, got 1.5',
      ],
      [() => retryBudget({ clock: {} as never }), 'retryBudget: option "clock" must be a Clock'],
      [
        () => retryBudget({ x: 1 } as never),
        'retryBudget: option "x" must be one of the known options (percent, minRetriesPerSecond, windowMs, buckets, clock), got 1',
      ],
      [
        () => retry({ budget: { percent: -1 } }),
        'retryBudget: option "percent" must be a number >= 0 and <= 1000, got -1',
      ],
    ];
    for (const [make, message] of cases)
      assert.throws(
        make,
        (e: unknown) => isInvalidOptionError(e) && (e as Error).message.startsWith(message),
        message,
      );
  });

  it('defaults and identity: 3 attempts, no budget, kind, context keys', async () => {
    const r = retry();
    assert.equal(r.kind, 'retry');
    assert.deepEqual(r.contextKeys, ['attempt']);
    assert.equal(r.maxAttempts, 3);
    assert.equal(r.budget, undefined);
    await assert.rejects(r.execute(1 as never), /execute: fn must be a function/);
    // Default budget options (20 %, 10/s over 10 s), on the retry's clock.
    const clock = new TestClock(0);
    const withBudget = retry({ budget: {}, clock });
    assert.deepEqual(withBudget.budget!.stats(), { calls: 0, retries: 0, allowed: 100 });
    withBudget.budget!.recordCall();
    clock.advance(9_999);
    assert.equal(withBudget.budget!.stats().calls, 1, 'the window is 10 s, on the retry clock');
    clock.advance(1);
    assert.equal(withBudget.budget!.stats().calls, 0);
    const shared = retryBudget({ clock });
    assert.equal(retry({ budget: shared }).budget, shared, 'a budget object is used as it is');
    assert.deepEqual(retryBudget({ percent: 50, minRetriesPerSecond: 0, windowMs: 1_000, clock }).stats(), {
      calls: 0,
      retries: 0,
      allowed: 0,
    });
  });

  it('events carry what happened: retry (attempt, delay, error or result) and giveUp (reason)', async () => {
    const clock = new TestClock(0);
    const events: unknown[] = [];
    const boom = new Error('boom');
    const r = retry({
      maxAttempts: 3,
      backoff: constantBackoff(10),
      clock,
      handleResult: (v) => v === 'bad',
      shouldRetry: (e) => e !== 'fatal',
    });
    r.on('retry', (e) => events.push(['retry', e]));
    r.on('giveUp', (e) => events.push(['giveUp', e]));
    const outcomes = ['bad', boom, 'bad'];
    let i = 0;
    assert.equal(
      await clock.settle(
        r.execute(() => {
          const o = outcomes[i++];
          if (o instanceof Error) throw o;
          return o;
        }),
      ),
      'bad',
    );
    assert.deepEqual(events, [
      ['retry', { attempt: 1, delay: 10, error: undefined, result: 'bad' }],
      ['retry', { attempt: 2, delay: 10, error: boom }],
      ['giveUp', { attempts: 3, error: undefined, result: 'bad', reason: 'max-attempts' }],
    ]);
    events.length = 0;
    await assert.rejects(
      clock.settle(
        r.execute(() => {
          throw 'fatal';
        }),
      ),
      (e) => e === 'fatal',
    );
    assert.deepEqual(events, [['giveUp', { attempts: 1, error: 'fatal', reason: 'not-retryable' }]]);
  });

  it('a retryAfter hint is used as it is (not the backoff), capped by maxDelay, ignored when invalid', async () => {
    const clock = new TestClock(0);
    const delays: number[] = [];
    const hinted = (retryAfter: unknown) => Object.assign(new Error('busy'), { retryAfter });
    for (const [hint, expected] of [
      [50, 50],
      [0, 0],
      [5_000, 1_000],
      [-5, 7],
      [Number.NaN, 7],
      [Number.POSITIVE_INFINITY, 7],
      ['20', 7],
      [undefined, 7],
    ] as const) {
      let n = 0;
      const r = retry({ maxAttempts: 2, maxDelay: 1_000, backoff: constantBackoff(7), clock });
      r.on('retry', ({ delay }) => delays.push(delay));
      await clock.settle(
        r.execute(() => {
          if (++n === 1) throw hinted(hint);
          return n;
        }),
      );
      assert.equal(delays.pop(), expected, `hint ${String(hint)}`);
    }
    // A thrown non-object carries no hint.
    let n = 0;
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(7), clock });
    r.on('retry', ({ delay }) => delays.push(delay));
    await clock.settle(
      r.execute(() => {
        if (++n === 1) throw null;
        return n;
      }),
    );
    assert.deepEqual(delays, [7]);
  });

  it('the backoff sees the previous delay and the random source', async () => {
    const clock = new TestClock(0);
    const seen: Array<[number, number, number]> = [];
    const r = retry({
      maxAttempts: 4,
      clock,
      random: () => 0.25,
      backoff: {
        delay: (retry, previous, random) => {
          seen.push([retry, previous, random()]);
          return previous + 100;
        },
      },
    });
    await assert.rejects(
      clock.settle(
        r.execute(() => {
          throw new Error('x');
        }),
      ),
      /x/,
    );
    assert.deepEqual(seen, [
      [1, 0, 0.25],
      [2, 100, 0.25],
      [3, 200, 0.25],
    ]);
    assert.equal(clock.now(), 600);
  });
});

describe('retry: the last survivors of mutation testing', () => {
  it('a first attempt that succeeds is returned as it is, with or without handleResult', async () => {
    assert.equal(await retry().execute(() => 'sync'), 'sync');
    assert.equal(await retry().execute(async () => 'async'), 'async');
    assert.equal(await retry({ handleResult: () => false }).execute(async () => 'kept'), 'kept');
  });

  it('with handleResult, an async rejection of the first attempt is retried, and rethrown at the end', async () => {
    const clock = new TestClock(0);
    let n = 0;
    const r = retry({ maxAttempts: 2, backoff: constantBackoff(5), clock, handleResult: (v) => v === 'bad' });
    assert.equal(
      await clock.settle(r.execute(async () => (++n === 1 ? Promise.reject(new Error('x')) : 'good'))),
      'good',
    );
    const once = retry({ maxAttempts: 1, clock, handleResult: (v) => v === 'bad' });
    await assert.rejects(
      once.execute(async () => {
        throw new Error('only');
      }),
      /only/,
    );
  });

  it('a caller abort during an attempt stops at once: giveUp "aborted", the attempt\'s error, no second attempt', async () => {
    const ac = new AbortController();
    const events: string[] = [];
    const r = retry({ maxAttempts: 3, backoff: constantBackoff(0) });
    r.on('giveUp', (e) => events.push(e.reason));
    let calls = 0;
    const err = new Error('attempt failed');
    await assert.rejects(
      r.execute(async () => {
        calls++;
        ac.abort(new Error('caller gone'));
        throw err;
      }, ac.signal),
      (e) => e === err,
    );
    assert.equal(calls, 1);
    assert.deepEqual(events, ['aborted']);
  });

  it('a null backoff is a bad option, not a crash', () => {
    assert.throws(
      () => retry({ backoff: null as never }),
      (e: unknown) => isInvalidOptionError(e) && /"backoff"/.test(String(e)),
    );
  });

  it("the budget window starts at the clock's own time (not at 0)", () => {
    const clock = new TestClock(1_700_000_000_000);
    const budget = retryBudget({ windowMs: 1_000, buckets: 10, clock });
    budget.recordCall();
    clock.advance(999);
    assert.equal(budget.stats().calls, 1);
    clock.advance(1);
    assert.equal(budget.stats().calls, 0, 'the call aged out after one window');
  });
});
