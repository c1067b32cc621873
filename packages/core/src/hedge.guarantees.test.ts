// Guarantees of hedge() that its first tests left unpinned (found by mutation testing,
// `npm run mutation -- hedge`): messages, defaults and bounds of the options, the context of a call
// run once, shouldHedge's exact `true`, the budget's bookkeeping and its event, the `won` event of a
// first attempt, `ref: false`, a signal first read after the call, and the percentile delay's
// clamps and refresh cadence. TestClock only.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { type HedgeContext, hedge, neverAbortedSignal, type RetryBudget } from './index.js';
import { TestClock } from './test-clock.js';

/** Work that answers `value` after `ms` on the clock, or rejects with the signal's reason when it aborts. */
function work<T>(clock: TestClock, ms: number, value: T, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    }, ms);
    const onAbort = () => {
      clock.clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A budget that counts what it is told and grants `grant`. */
function spyBudget(grant: boolean) {
  const b = {
    calls: 0,
    tries: 0,
    recordCall() {
      b.calls++;
    },
    tryRetry() {
      b.tries++;
      return grant;
    },
  };
  return b;
}

describe('hedge: options', () => {
  it('messages name the policy, the option and the rule', () => {
    assert.throws(() => hedge(null as never), {
      message: 'hedge: option "options" must be an object, got null',
    });
    assert.throws(() => hedge({} as never), {
      message:
        'hedge: option "idempotent" must be true (hedging runs the work more than once; use it only for idempotent work), got undefined',
    });
    assert.throws(() => hedge({ idempotent: true }), {
      message: 'hedge: option "delayMs" must be given, or else percentile, but not both, got undefined',
    });
    assert.throws(() => hedge({ idempotent: true, percentile: 100 }), {
      message: 'hedge: option "percentile" must be a number > 0 and < 100, got 100',
    });
    assert.throws(() => hedge({ idempotent: true, percentile: 90, minDelayMs: 10, maxDelayMs: 5 }), {
      message: 'hedge: option "maxDelayMs" must be >= minDelayMs (10), got 5',
    });
    for (const k of ['minDelayMs', 'maxDelayMs'] as const)
      assert.throws(() => hedge({ idempotent: true, delayMs: 5, [k]: 1 }), {
        message: `hedge: option "${k}" must be left out with delayMs (it applies to percentile), got 1`,
      });
    assert.throws(() => hedge({ idempotent: true, delayMs: 5, budget: null as never }), {
      message: 'hedge: option "budget" must be an object, got null',
    });
    // Half a RetryBudget is not one: it is read as options.
    assert.throws(() => hedge({ idempotent: true, delayMs: 5, budget: { tryRetry: () => true } as never }), {
      option: 'budget.tryRetry',
    } as object);
  });

  it('bounds: edges allowed, just past them refused with the field named', () => {
    const ok = [
      { delayMs: 0 },
      { delayMs: 5, maxAttempts: 10 },
      { percentile: 99.9 },
      { percentile: 50, minSamples: 1, minDelayMs: 0, maxDelayMs: 0 },
      { delayMs: 5, budget: { percent: 1000, minRetriesPerSecond: 0, windowMs: 86_400_000, buckets: 1000 } },
      { delayMs: 5, budget: { windowMs: 1, buckets: 1 } },
      { delayMs: 5, ref: false },
    ];
    for (const o of ok) assert.doesNotThrow(() => hedge({ idempotent: true, ...o }), JSON.stringify(o));
    const bad: [string, object][] = [
      ['maxAttempts', { delayMs: 5, maxAttempts: 11 }],
      ['minSamples', { percentile: 50, minSamples: 0 }],
      ['minSamples', { percentile: 50, minSamples: 1.5 }],
      ['minDelayMs', { percentile: 50, minDelayMs: -1 }],
      ['maxDelayMs', { percentile: 50, maxDelayMs: -1 }],
      ['percentile', { percentile: 101 }],
      ['budget.percent', { delayMs: 5, budget: { percent: 1001 } }],
      ['budget.minRetriesPerSecond', { delayMs: 5, budget: { minRetriesPerSecond: -1 } }],
      ['budget.windowMs', { delayMs: 5, budget: { windowMs: 0 } }],
      ['budget.windowMs', { delayMs: 5, budget: { windowMs: 86_400_001 } }],
      ['budget.buckets', { delayMs: 5, budget: { buckets: 1.5 } }],
      ['budget.buckets', { delayMs: 5, budget: { buckets: 1001 } }],
      ['ref', { delayMs: 5, ref: 1 }],
    ];
    for (const [field, o] of bad)
      assert.throws(
        () => hedge({ idempotent: true, ...o } as never),
        (e: unknown) => (e as { option?: string }).option === field,
        field,
      );
  });

  it('kind, contextKeys, a fn that is not a function, an aborted caller', async () => {
    const h = hedge({ idempotent: true, delayMs: 5, clock: new TestClock(0) });
    assert.equal(h.kind, 'hedge');
    assert.deepEqual(h.contextKeys, ['hedgeAttempt']);
    await assert.rejects(h.execute(3 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    let ran = false;
    await assert.rejects(
      h.execute(() => {
        ran = true;
      }, ac.signal),
      /gone/,
    );
    assert.equal(ran, false);
    assert.equal(h.stats().calls, 0);
  });
});

describe('hedge: calls', () => {
  it('a call run once gets the caller signal (or neverAbortedSignal) and attempt 1; a throw rejects', async () => {
    const clock = new TestClock(0);
    for (const opts of [{ delayMs: 5 }, { percentile: 50 }]) {
      const h = hedge({ idempotent: true, ...opts, clock, shouldHedge: () => false });
      const seen: HedgeContext[] = [];
      const take = (ctx: HedgeContext) => {
        seen.push(ctx);
        return 1;
      };
      assert.equal(await h.execute(take), 1);
      assert.equal(await h.execute(take, neverAbortedSignal), 1);
      const ac = new AbortController();
      assert.equal(await h.execute(take, ac.signal), 1);
      assert.equal(seen[0]!.signal, neverAbortedSignal);
      assert.equal(seen[1]!.signal, neverAbortedSignal);
      assert.equal(seen[2]!.signal, ac.signal);
      assert.deepEqual(
        seen.map((c) => c.hedgeAttempt),
        [1, 1, 1],
      );
      let runs = 0;
      await assert.rejects(
        h.execute(() => {
          runs++;
          throw new Error('sync');
        }),
        /sync/,
      );
      assert.equal(runs, 1, 'fn runs once');
      assert.equal(clock.pending, 0);
    }
  });

  it('shouldHedge must return exactly true; a throw rejects the call; only hedged calls are recorded in the budget', async () => {
    const clock = new TestClock(0);
    const budget = spyBudget(true);
    let answer: unknown = 'yes';
    const h = hedge({
      idempotent: true,
      delayMs: 10,
      clock,
      budget: budget as unknown as RetryBudget,
      shouldHedge: () => answer as boolean,
    });
    await h.execute(() => 1);
    assert.equal(budget.calls, 0, 'a truthy non-true answer does not hedge');
    answer = true;
    await h.execute(() => 1);
    assert.equal(budget.calls, 1);
    const h2 = hedge({
      idempotent: true,
      delayMs: 10,
      clock,
      shouldHedge: () => {
        throw new Error('decide');
      },
    });
    await assert.rejects(
      h2.execute(() => 1),
      /decide/,
    );
  });

  it('a refused budget: budgetExhausted event and count, no extra attempt', async () => {
    const clock = new TestClock(0);
    const budget = spyBudget(false);
    const h = hedge({ idempotent: true, delayMs: 10, clock, budget: budget as unknown as RetryBudget });
    const events: unknown[] = [];
    h.on('budgetExhausted', (e) => events.push(e));
    h.on('hedged', (e) => events.push(e));
    let started = 0;
    const p = h.execute(({ signal }) => {
      started++;
      return work(clock, 50, 'one', signal);
    });
    await clock.advanceAsync(50);
    assert.equal(await p, 'one');
    assert.equal(started, 1);
    assert.deepEqual(events, [{ attempt: 2 }]);
    assert.deepEqual(h.stats(), { calls: 1, hedges: 0, hedgeWins: 0, budgetExhausted: 1, delayMs: 10 });
    assert.equal(budget.tries, 1);
  });

  it('the default budget is 10 % of calls plus 1 a second (10 over its 10 s window)', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    const calls: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++)
      calls.push(h.execute(() => new Promise((r) => clock.setTimeout(() => r(undefined), 100))));
    await clock.advanceAsync(100);
    await Promise.all(calls);
    // retryBudget's own defaults (20 %, 10 a second) would allow all 40.
    assert.equal(h.stats().hedges, 14);
    assert.equal(h.stats().budgetExhausted, 26);
  });

  it('the first attempt winning: won event with attempt 1 and the call duration, not a hedge win', async () => {
    const clock = new TestClock(1_000);
    const h = hedge({ idempotent: true, delayMs: 10, clock, budget: { percent: 1000 } });
    const won: unknown[] = [];
    h.on('won', (e) => won.push(e));
    const p = h.execute(({ signal, hedgeAttempt }) =>
      work(clock, hedgeAttempt === 1 ? 15 : 100, hedgeAttempt, signal),
    );
    await clock.advanceAsync(15);
    assert.equal(await p, 1);
    assert.deepEqual(won, [{ attempt: 1, duration: 15 }]);
    assert.equal(h.stats().hedgeWins, 0);
    assert.equal(h.stats().hedges, 1);
    assert.equal(clock.pending, 0);
  });

  it('a loser that succeeds later (ignoring its abort) changes nothing: one won event, one hedge win', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock, budget: { percent: 1000 } });
    const won: unknown[] = [];
    h.on('won', (e) => won.push(e));
    const p = h.execute(
      ({ hedgeAttempt }) =>
        new Promise((resolve) =>
          clock.setTimeout(() => resolve(hedgeAttempt), hedgeAttempt === 1 ? 100 : 20),
        ),
    );
    await clock.advanceAsync(100);
    assert.equal(await p, 2);
    assert.deepEqual(won, [{ attempt: 2, duration: 30 }]);
    assert.equal(h.stats().hedgeWins, 1);
  });

  it('one signal per attempt, however often it is read; no listener on neverAbortedSignal', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    let same = false;
    let listeners = -1;
    await h.execute((ctx) => {
      const first = ctx.signal;
      same = ctx.signal === first;
      listeners = getEventListeners(neverAbortedSignal, 'abort').length;
      return 1;
    }, neverAbortedSignal);
    assert.equal(same, true);
    assert.equal(listeners, 0);
  });

  it('a first attempt that throws synchronously rejects the call and arms nothing more', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    await assert.rejects(
      h.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(clock.pending, 0);
  });

  it('a signal first read after the call is over is already aborted with its outcome', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock });
    let ctx!: HedgeContext;
    await h.execute((c) => {
      ctx = c;
      return 'v';
    });
    assert.equal(ctx.signal.aborted, true);
    assert.equal((ctx.signal.reason as Error).name, 'AbortError');
    assert.equal((ctx.signal.reason as Error).message, 'hedge: another attempt succeeded first');
    const boom = new Error('boom');
    await assert.rejects(
      h.execute((c) => {
        ctx = c;
        return Promise.reject(boom);
      }),
      /boom/,
    );
    assert.equal(ctx.signal.aborted, true);
    assert.equal(ctx.signal.reason, boom);
  });

  it('ref: false unrefs the hedge timer', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, delayMs: 10, clock, ref: false });
    const p = h.execute(({ signal }) => work(clock, 5, 'x', signal));
    assert.equal(clock.pending, 2);
    assert.equal(clock.refed, 1, 'only the work timer keeps the process alive');
    await clock.advanceAsync(5);
    assert.equal(await p, 'x');
  });
});

describe('hedge: percentile delay', () => {
  /** A call run once (shouldHedge false) that takes `ms` on the clock. */
  const timed = (clock: TestClock, ms: number) => () => {
    clock.advance(ms);
    return ms;
  };

  it('clamped to [minDelayMs (default 1), maxDelayMs]; failures are not samples', async () => {
    const clock = new TestClock(0);
    const zero = hedge({ idempotent: true, percentile: 50, minSamples: 1, clock, shouldHedge: () => false });
    await zero.execute(timed(clock, 0));
    assert.equal(zero.stats().delayMs, 1);
    const capped = hedge({
      idempotent: true,
      percentile: 50,
      minSamples: 1,
      maxDelayMs: 5,
      clock,
      shouldHedge: () => false,
    });
    await capped.execute(timed(clock, 100));
    assert.equal(capped.stats().delayMs, 5);
    const floor = hedge({
      idempotent: true,
      percentile: 50,
      minSamples: 1,
      minDelayMs: 20,
      clock,
      shouldHedge: () => false,
    });
    await assert.rejects(
      floor.execute(() => {
        clock.advance(3);
        return Promise.reject(new Error('no'));
      }),
      /no/,
    );
    assert.equal(floor.stats().delayMs, undefined, 'a failure is not a sample');
    await floor.execute(timed(clock, 3));
    assert.equal(floor.stats().delayMs, 20);
  });

  it('recomputed on every sample for the first 256, then every 16th', async () => {
    const clock = new TestClock(0);
    const h = hedge({ idempotent: true, percentile: 99, minSamples: 1, clock, shouldHedge: () => false });
    for (let i = 0; i < 256; i++) await h.execute(timed(clock, 10));
    const fast = h.stats().delayMs!;
    assert.ok(fast >= 9 && fast <= 11, `${fast}`);
    for (let i = 257; i <= 271; i++) {
      await h.execute(timed(clock, 1_000));
      assert.equal(h.stats().delayMs, fast, `sample ${i}: not recomputed yet`);
    }
    await h.execute(timed(clock, 1_000));
    assert.ok(h.stats().delayMs! > 500, `sample 272 recomputes: ${h.stats().delayMs}`);
  });
});
