// Guarantees of adaptiveLimiter() that its first tests left unpinned (found by mutation testing,
// `npm run mutation -- adaptive-limiter`): the error and its message, option defaults and bounds,
// the window arithmetic (exact limits, short and long RTT after hand-computed windows), the
// `limitChange` and `rejected` events, and the queue's timer. TestClock only.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AdaptiveLimiterPolicy,
  adaptiveLimiter,
  ConcurrencyLimitError,
  isConcurrencyLimitError,
  neverAbortedSignal,
  type PolicyContext,
} from './index.js';
import { TestClock } from './test-clock.js';

/** A TestClock counting the timers set. */
class CountingClock extends TestClock {
  set = 0;
  override setTimeout(fn: () => void, ms: number) {
    this.set++;
    return super.setTimeout(fn, ms);
  }
}

/** Starts `n` calls at once, each taking `ms`, and lets them all complete. */
async function window(l: AdaptiveLimiterPolicy, clock: TestClock, n: number, ms: number): Promise<void> {
  const calls: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++)
    calls.push(l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, ms))));
  await clock.advanceAsync(ms);
  await Promise.all(calls);
}

describe('adaptiveLimiter: error and options', () => {
  it('ConcurrencyLimitError: name, code, limit, reason and both messages', () => {
    const full = new ConcurrencyLimitError(3, 'full');
    assert.equal(full.name, 'ConcurrencyLimitError');
    assert.equal(full.code, 'ERR_CONCURRENCY_LIMIT');
    assert.equal(full.message, 'Concurrency limit reached: 3 running and the queue is full');
    assert.equal(full.limit, 3);
    assert.equal(full.reason, 'full');
    const late = new ConcurrencyLimitError(4, 'queue-timeout');
    assert.equal(late.message, 'Concurrency limit queue wait expired (limit 4)');
    assert.equal(isConcurrencyLimitError(full), true);
    for (const x of [null, undefined, 'ERR_CONCURRENCY_LIMIT', { code: 'ERR_OTHER' }, new Error('x')])
      assert.equal(isConcurrencyLimitError(x), false);
  });

  it('defaults: limit 10, clamped into [minLimit, maxLimit]; maxLimit 1000 or minLimit', () => {
    assert.equal(adaptiveLimiter().stats().limit, 10);
    assert.equal(adaptiveLimiter({ maxLimit: 5 }).stats().limit, 5);
    assert.equal(adaptiveLimiter({ minLimit: 20 }).stats().limit, 20);
    assert.doesNotThrow(() => adaptiveLimiter({ initialLimit: 1_000 }));
    assert.throws(() => adaptiveLimiter({ initialLimit: 1_001 }), { option: 'initialLimit' } as object);
    assert.doesNotThrow(() => adaptiveLimiter({ minLimit: 2_000, initialLimit: 2_000 }));
  });

  it('option bounds: the edges allowed and just past them refused', () => {
    const ok = [
      { smoothing: 1 },
      { tolerance: 1 },
      { tolerance: 100 },
      { headroom: 0 },
      { headroom: 1_000 },
      { longWindow: 1 },
      { longWindow: 100_000 },
      { windowMs: 0 },
      { windowMs: 86_400_000 },
      { maxQueue: 0 },
      { queueTimeoutMs: 0 },
      { ref: false },
    ];
    for (const o of ok) assert.doesNotThrow(() => adaptiveLimiter(o), JSON.stringify(o));
    const bad: [string, object][] = [
      ['smoothing', { smoothing: 1.01 }],
      ['tolerance', { tolerance: 100.5 }],
      ['headroom', { headroom: 1_001 }],
      ['longWindow', { longWindow: 100_001 }],
      ['windowMs', { windowMs: 86_400_001 }],
      ['minLimit', { minLimit: 1.5 }],
      ['maxLimit', { maxLimit: 10.5 }],
      ['initialLimit', { initialLimit: 2.5 }],
      ['minWindowSamples', { minWindowSamples: 1.5 }],
      ['maxQueue', { maxQueue: -1 }],
      ['ref', { ref: 'no' }],
      ['options', 5 as unknown as object],
    ];
    for (const [field, o] of bad)
      assert.throws(
        () => adaptiveLimiter(o as never),
        (e: unknown) => (e as { option?: string }).option === field,
        field,
      );
  });

  it('kind, contextKeys, a fn that is not a function, an aborted caller', async () => {
    const l = adaptiveLimiter();
    assert.equal(l.kind, 'adaptiveLimiter');
    assert.deepEqual(l.contextKeys, []);
    await assert.rejects(l.execute(3 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
    const ac = new AbortController();
    ac.abort(new Error('gone'));
    let ran = false;
    await assert.rejects(
      l.execute(() => {
        ran = true;
      }, ac.signal),
      /gone/,
    );
    assert.equal(ran, false);
    assert.equal(l.stats().executed, 0);
  });

  it('fn gets the caller signal, or neverAbortedSignal without one', async () => {
    const l = adaptiveLimiter();
    const seen: AbortSignal[] = [];
    const take = (ctx: PolicyContext) => {
      seen.push(ctx.signal);
    };
    await l.execute(take);
    await l.execute(take, neverAbortedSignal);
    const ac = new AbortController();
    await l.execute(take, ac.signal);
    assert.equal(seen[0], neverAbortedSignal);
    assert.equal(seen[1], neverAbortedSignal);
    assert.equal(seen[2], ac.signal);
  });
});

describe('adaptiveLimiter: windows', () => {
  it('grows by headroom, follows a faster window halfway, lets the usual latency drift up within tolerance', async () => {
    const clock = new TestClock(0);
    const l = adaptiveLimiter({ initialLimit: 10, headroom: 10, windowMs: 0, minWindowSamples: 10, clock });
    const changes: unknown[] = [];
    l.on('limitChange', (e) => changes.push(e));
    await window(l, clock, 10, 10);
    // short = long = 10, gradient 1: estimate 10 * 0.8 + (10 + 10) * 0.2 = 12.
    assert.deepEqual(changes, [{ from: 10, to: 12, shortRtt: 10, longRtt: 10 }]);
    assert.equal(l.stats().shortRtt, 10);
    assert.equal(l.stats().longRtt, 10);
    await window(l, clock, 10, 4);
    // Faster: long = 10 + 0.5 * (4 - 10) = 7; estimate 12 * 0.8 + 22 * 0.2 = 14.
    assert.deepEqual(changes[1], { from: 12, to: 14, shortRtt: 4, longRtt: 7 });
    await window(l, clock, 10, 10.5);
    // Exactly tolerance * long (1.5 * 7): still counted, long += 2 / 61 * 3.5.
    const long = l.stats().longRtt!;
    assert.ok(Math.abs(long - (7 + 7 / 61)) < 1e-9, `long ${long}`);
    assert.equal(l.stats().limit, 16);
    await window(l, clock, 10, 20);
    // Past tolerance: the usual latency is left alone.
    assert.equal(l.stats().longRtt, long);
    assert.equal(l.stats().shortRtt, 20);
    const s = l.stats();
    assert.equal(s.executed, 40);
    assert.equal(s.running, 0);
  });

  it('shrinks with the gradient, never below 0.5 a window, and not below minLimit', async () => {
    for (const minLimit of [1, 9]) {
      const clock = new TestClock(0);
      const l = adaptiveLimiter({
        initialLimit: 20,
        minLimit,
        headroom: 0,
        smoothing: 1,
        windowMs: 0,
        minWindowSamples: 10,
        clock,
      });
      const changes: unknown[] = [];
      l.on('limitChange', (e) => changes.push(e));
      await window(l, clock, 10, 10); // 10 running = half of 20: judged, gradient 1, no change
      assert.deepEqual(changes, []);
      await window(l, clock, 10, 60); // gradient 15 / 60 = 0.25, clamped to 0.5
      assert.deepEqual(changes, [{ from: 20, to: 10, shortRtt: 60, longRtt: 10 }]);
      await window(l, clock, 10, 20); // gradient 0.75: 7.5
      assert.equal(l.stats().limit, minLimit === 1 ? 7 : 9);
    }
  });

  it('the limit never goes above maxLimit; a window exactly at half the limit is judged', async () => {
    const clock = new TestClock(0);
    const l = adaptiveLimiter({
      initialLimit: 20,
      maxLimit: 21,
      headroom: 10,
      windowMs: 0,
      minWindowSamples: 10,
      clock,
    });
    await window(l, clock, 10, 10); // 16 + 30 * 0.2 = 22, capped at 21
    assert.equal(l.stats().limit, 21);
    const light = adaptiveLimiter({
      initialLimit: 20,
      headroom: 10,
      windowMs: 0,
      minWindowSamples: 10,
      clock,
    });
    await window(light, clock, 9, 10);
    await window(light, clock, 1, 10); // 9 at most at once: under half, left alone
    assert.equal(light.stats().limit, 20);
    assert.equal(light.stats().shortRtt, 10);
  });

  it('a window closes once both windowMs has passed and minWindowSamples completed', async () => {
    const clock = new TestClock(1_000);
    const l = adaptiveLimiter({ minWindowSamples: 2, windowMs: 100, clock });
    await window(l, clock, 1, 10);
    await window(l, clock, 1, 10);
    assert.equal(l.stats().shortRtt, undefined, 'two samples but only 20 ms');
    await clock.advanceAsync(70);
    await window(l, clock, 1, 10); // completes at exactly 100 ms
    assert.equal(l.stats().shortRtt, 10);
    const few = adaptiveLimiter({ minWindowSamples: 3, windowMs: 0, clock });
    await window(few, clock, 2, 5);
    assert.equal(few.stats().shortRtt, undefined);
    await window(few, clock, 1, 5);
    assert.equal(few.stats().shortRtt, 5);
  });

  it('latency 0 counts as 0.001 ms; an aborted call and a throwing fn release their slot', async () => {
    const clock = new TestClock(0);
    const l = adaptiveLimiter({ initialLimit: 1, minWindowSamples: 1, windowMs: 0, clock });
    const ac = new AbortController();
    const p = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 10)), ac.signal);
    ac.abort(new Error('late'));
    await clock.advanceAsync(10);
    await p;
    assert.equal(l.stats().shortRtt, undefined, 'the aborted call is not a sample');
    assert.equal(l.stats().running, 0);
    await assert.rejects(
      l.execute(() => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(l.stats().running, 0);
    assert.equal(l.stats().shortRtt, 0.001);
  });
});

describe('adaptiveLimiter: queue', () => {
  const fixed = (clock: TestClock, extra: object = {}) =>
    adaptiveLimiter({ initialLimit: 1, minLimit: 1, maxLimit: 1, maxQueue: 5, clock, ...extra });

  it('the rejected event carries the reason and the limit', async () => {
    const clock = new TestClock(0);
    const l = adaptiveLimiter({ initialLimit: 1, maxQueue: 1, queueTimeoutMs: 10, clock });
    const seen: unknown[] = [];
    l.on('rejected', (e) => seen.push(e));
    const running = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 50)));
    const queued = l.execute(() => 1);
    await assert.rejects(
      l.execute(() => 2),
      (e) => e instanceof ConcurrencyLimitError && e.reason === 'full',
    );
    await clock.advanceAsync(10);
    await assert.rejects(queued, (e) => isConcurrencyLimitError(e) && e.reason === 'queue-timeout');
    assert.deepEqual(seen, [
      { reason: 'full', limit: 1 },
      { reason: 'queue-timeout', limit: 1 },
    ]);
    await clock.advanceAsync(40);
    await running;
  });

  it('each waiter times out at its own deadline: one timer, re-armed for the next head', async () => {
    const clock = new CountingClock(0);
    const l = fixed(clock, { queueTimeoutMs: 100 });
    const hold = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 1_000)));
    const a = l.execute(() => 'a');
    let aDone = false;
    a.catch(() => {
      aDone = true;
    });
    await clock.advanceAsync(50);
    const b = l.execute(() => 'b');
    let bDone = false;
    b.catch(() => {
      bDone = true;
    });
    await clock.advanceAsync(49);
    assert.equal(aDone, false);
    await clock.advanceAsync(1);
    assert.equal(aDone, true);
    assert.equal(l.stats().queued, 1);
    await clock.advanceAsync(49);
    assert.equal(bDone, false);
    await clock.advanceAsync(1);
    assert.equal(bDone, true);
    assert.equal(l.stats().queued, 0);
    assert.equal(clock.set, 3, 'the running call, the queue timer and its one re-arm at the next deadline');
    assert.equal(clock.pending, 1, 'only the running call holds a timer');
    await clock.advanceAsync(900);
    await hold;
  });

  it('a waiter leaving from the middle or the tail keeps the rest in order; an empty queue clears its timer', async () => {
    const clock = new TestClock(0);
    const l = fixed(clock, { queueTimeoutMs: 500 });
    const order: string[] = [];
    const hold = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 10)));
    const acs = [new AbortController(), new AbortController(), new AbortController(), new AbortController()];
    const calls = ['a', 'b', 'c', 'd'].map((n, i) =>
      l.execute(() => {
        order.push(n);
      }, acs[i]!.signal),
    );
    acs[1]!.abort(new Error('b left'));
    acs[3]!.abort(new Error('d left'));
    await assert.rejects(calls[1]!, /b left/);
    await assert.rejects(calls[3]!, /d left/);
    assert.equal(l.stats().queued, 2);
    const e = l.execute(() => {
      order.push('e');
    });
    await clock.advanceAsync(10);
    await hold;
    await Promise.all([calls[0], calls[2], e]);
    assert.deepEqual(order, ['a', 'c', 'e']);
    assert.equal(clock.pending, 0, 'no queue timer left');
    const l2 = fixed(clock, { queueTimeoutMs: 500 });
    const hold2 = l2.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 10)));
    const ac = new AbortController();
    const only = l2.execute(() => 1, ac.signal);
    assert.equal(clock.pending, 2);
    ac.abort(new Error('left'));
    await assert.rejects(only, /left/);
    assert.equal(clock.pending, 1, 'the queue timer is cleared with the last waiter');
    await clock.advanceAsync(10);
    await hold2;
  });

  it('a waiter leaving while others wait leaves the queue timer armed for them', async () => {
    const clock = new TestClock(0);
    const l = fixed(clock, { queueTimeoutMs: 100 });
    const hold = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 1_000)));
    const a = l.execute(() => 'a');
    const ac = new AbortController();
    const b = l.execute(() => 'b', ac.signal);
    await clock.advanceAsync(10);
    ac.abort(new Error('b left'));
    await assert.rejects(b, /b left/);
    await clock.advanceAsync(90);
    await assert.rejects(a, (e) => isConcurrencyLimitError(e) && e.reason === 'queue-timeout');
    await clock.advanceAsync(900);
    await hold;
  });

  it('no queue timer without queueTimeoutMs; ref: false unrefs it', async () => {
    const clock = new TestClock(0);
    const l = fixed(clock);
    const hold = l.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 10)));
    const q = l.execute(() => 1);
    assert.equal(clock.pending, 1);
    await clock.advanceAsync(10);
    assert.equal(await q, 1);
    await hold;
    const u = fixed(clock, { queueTimeoutMs: 100, ref: false });
    const hold2 = u.execute(() => new Promise<void>((resolve) => clock.setTimeout(resolve, 10)));
    const q2 = u.execute(() => 2);
    assert.equal(clock.pending, 2);
    assert.equal(clock.refed, 1, 'the queue timer does not keep the process alive');
    await clock.advanceAsync(10);
    assert.equal(await q2, 2);
    await hold2;
  });
});
