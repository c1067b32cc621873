import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { isInvalidOptionError, isRateLimitedError, neverAbortedSignal, rateLimiter } from './index.js';
import { TestClock } from './test-clock.js';

describe('rateLimiter', () => {
  it('validates options', () => {
    assert.throws(
      () => rateLimiter({ rate: 0 }),
      (e: unknown) => isInvalidOptionError(e) && /"rate" must be a number > 0/.test(String(e)),
    );
    assert.throws(() => rateLimiter({ rate: 1, burst: 0 }), /"burst" must be a number >= 1/);
  });

  it('allows a burst, then rate per period, rejecting with retryAfter', async () => {
    const clock = new TestClock();
    const l = rateLimiter({ rate: 10, per: 1_000, burst: 3, clock });
    for (let i = 0; i < 3; i++) assert.equal(await l.execute(() => i), i);
    await assert.rejects(
      l.execute(() => 'no'),
      (e: unknown) =>
        isRateLimitedError(e) && Math.abs((e as { retryAfter: number }).retryAfter - 100) < 1e-9,
    );
    clock.advance(100);
    assert.equal(await l.execute(() => 'yes'), 'yes');
    assert.equal(l.tryAcquire(), false);
    clock.advance(10_000);
    assert.equal(l.tokens, 3);
  });

  it('waits for a token when maxWaitMs allows, in order, and the wait stops on abort', async () => {
    const clock = new TestClock();
    const l = rateLimiter({ rate: 1, per: 100, burst: 1, maxWaitMs: 250, clock });
    const got: string[] = [];
    await l.execute(() => got.push('a'));
    const b = l.execute(() => got.push('b'));
    const ac = new AbortController();
    const c = l.execute(() => got.push('c'), ac.signal);
    await assert.rejects(
      l.execute(() => got.push('x')),
      isRateLimitedError,
    ); // would wait 300 ms
    ac.abort(new Error('stop'));
    await assert.rejects(c, /stop/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    await clock.advanceAsync(100);
    await b;
    assert.deepEqual(got, ['a', 'b']);
    assert.equal(clock.pending, 0);
  });
});

describe('rateLimiter: waits that keep the process alive', () => {
  it("a call waiting for its token holds a ref'd timer unless ref: false", async () => {
    const clock = new TestClock();
    for (const ref of [undefined, false]) {
      const l = rateLimiter({
        rate: 1,
        per: 100,
        burst: 1,
        maxWaitMs: 1_000,
        clock,
        ...(ref === undefined ? {} : { ref }),
      });
      assert.equal(l.tryAcquire(), true);
      const p = l.execute(() => 'waited');
      assert.deepEqual([clock.pending, clock.refed], [1, ref === false ? 0 : 1]);
      await clock.advanceAsync(100);
      assert.equal(await p, 'waited');
    }
    assert.throws(
      () => rateLimiter({ rate: 1, ref: null as unknown as boolean }),
      /option "ref" must be true or false/,
    );
  });

  it('a timer that fires early does not run the call before its token', async () => {
    const inner = new TestClock();
    const early = {
      now: () => inner.now(),
      setTimeout: (fn: () => void, ms: number) => inner.setTimeout(fn, ms > 3 ? ms - 3 : ms),
      clearTimeout: (h: Parameters<typeof inner.clearTimeout>[0]) => inner.clearTimeout(h),
    };
    const l = rateLimiter({ rate: 1, per: 100, burst: 1, maxWaitMs: 1_000, clock: early });
    l.tryAcquire();
    const start = inner.now();
    const p = l.execute(() => inner.now() - start);
    await inner.advanceAsync(200);
    assert.equal(await p, 100);
  });
});

describe('rateLimiter: details pinned by mutation testing', () => {
  it('names itself, defaults burst to max(1, rate), and names each bad option', () => {
    const l = rateLimiter({ rate: 5 });
    assert.equal(l.kind, 'rateLimiter');
    assert.deepEqual(l.contextKeys, []);
    assert.equal(l.tokens, 5, 'burst defaults to rate');
    assert.equal(rateLimiter({ rate: 0.5 }).tokens, 1, 'and to at least 1');
    const bad = (o: unknown, re: RegExp) =>
      assert.throws(
        () => rateLimiter(o as Parameters<typeof rateLimiter>[0]),
        (e: unknown) => isInvalidOptionError(e) && re.test(String(e)),
      );
    bad({ rate: 1, per: 0 }, /rateLimiter: option "per" must be a number > 0 and <= 86400000, got 0/);
    bad(
      { rate: 1, maxWaitMs: -1 },
      /rateLimiter: option "maxWaitMs" must be a number >= 0 and <= 2147483647, got -1/,
    );
    bad({ rate: 1, clock: {} }, /rateLimiter: option "clock" must be a Clock/);
    bad({ rate: 1, rat: 1 }, /rateLimiter: option "rat" must be one of the known options/);
    bad(undefined, /rateLimiter: option "options" must be an object, got undefined/);
  });

  it('hands fn the caller signal (or one that never aborts); rejects bad calls without throwing', async () => {
    const l = rateLimiter({ rate: 100, clock: new TestClock() });
    const ac = new AbortController();
    assert.equal(await l.execute(({ signal }) => signal, ac.signal), ac.signal);
    assert.equal(await l.execute(({ signal }) => signal), neverAbortedSignal);
    assert.equal(await l.execute(({ signal }) => signal, neverAbortedSignal), neverAbortedSignal);
    const boom = new Error('sync');
    const p = l.execute(() => {
      throw boom;
    });
    await assert.rejects(p, (e) => e === boom);
    await assert.rejects(l.execute(1 as never), /execute: fn must be a function/);
    let ran = 0;
    const gone = new Error('gone');
    await assert.rejects(
      l.execute(() => ran++, AbortSignal.abort(gone)),
      (e) => e === gone,
    );
    assert.equal(ran, 0);
  });

  it('waits when the wait equals maxWaitMs; reports rejections with retryAfter; waiters queue behind each other', async () => {
    const clock = new TestClock();
    const l = rateLimiter({ rate: 1, per: 100, burst: 1, maxWaitMs: 200, clock });
    const rejected: number[] = [];
    const sub = l.on('rejected', ({ retryAfter }) => rejected.push(retryAfter));
    assert.equal(l.tryAcquire(), true);
    const at: number[] = [];
    const start = clock.now();
    const first = l.execute(() => at.push(clock.now() - start)); // waits 100
    const second = l.execute(() => at.push(clock.now() - start)); // reserved behind it: waits 200 = maxWaitMs
    await assert.rejects(
      l.execute(() => 0),
      isRateLimitedError,
    ); // would wait 300
    assert.deepEqual(rejected, [300]);
    sub.dispose();
    await assert.rejects(
      l.execute(() => 0),
      isRateLimitedError,
    );
    assert.deepEqual(rejected, [300], 'no listener, no event');
    await clock.settle(Promise.all([first, second]));
    assert.deepEqual(at, [100, 200]);
  });
});

describe('rateLimiter: an aborted waiter', () => {
  it('gives its reserved token back: the next caller waits as if it never came', async () => {
    const clock = new TestClock(0);
    const l = rateLimiter({ rate: 1, per: 100, burst: 1, maxWaitMs: 1_000, clock });
    l.tryAcquire();
    const a = l.execute(() => clock.now()); // token at 100
    const ac = new AbortController();
    const b = l.execute(() => clock.now(), ac.signal); // token at 200
    ac.abort(new Error('left'));
    await assert.rejects(b, /left/);
    const c = l.execute(() => clock.now()); // takes b's place: 200, not 300
    assert.deepEqual(await clock.settle(Promise.all([a, c])), [100, 200]);
  });
});
