// Guarantees of timeout() that its first tests left unpinned (found by mutation testing,
// `npm run mutation -- timeout`): the signal handed to fn (one per call, aborted when read late),
// results that are not promises, a rejection of an aggressive call's fn, the TimeoutError's cause,
// a deadline passing during fn's synchronous part, calls started from a timeout listener, and the
// one-timer design (re-armed once per expiry, never per millisecond).
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import {
  isTimeoutError,
  neverAbortedSignal,
  type PolicyContext,
  TimeoutError,
  type TimerHandle,
  timeout,
} from './index.js';
import { TestClock } from './test-clock.js';

const never = () => new Promise<never>(() => {});

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** A TestClock counting the timers set, whose handles may lack the optional `ref()`. */
class CountingClock extends TestClock {
  set = 0;
  constructor(readonly withRef = true) {
    super();
  }
  override setTimeout(fn: () => void, ms: number): TimerHandle {
    this.set++;
    const h = super.setTimeout(fn, ms);
    if (this.withRef) return h;
    // A clock written before TimerHandle.ref existed.
    return Object.assign(Object.create(null), { unref: () => h.unref(), inner: h }) as TimerHandle;
  }
  override clearTimeout(handle: TimerHandle): void {
    super.clearTimeout((handle as { inner?: TimerHandle }).inner ?? handle);
  }
}

describe('timeout: options and shape', () => {
  it('messages name the policy and the option', () => {
    assert.throws(() => timeout({ ms: 0 }), {
      message: 'timeout: option "ms" must be a number > 0 and <= 2147483647, got 0',
    });
    assert.throws(() => timeout(null as never), {
      message: 'timeout: option "options" must be an object, got null',
    });
    assert.throws(
      () => timeout({ ms: 1, clock: {} as never }),
      (e: unknown) => {
        assert.match((e as Error).message, /^timeout: option "clock" must be a Clock/);
        return true;
      },
    );
  });

  it('kind, strategy and contextKeys', () => {
    const t = timeout({ ms: 5 });
    assert.equal(t.kind, 'timeout');
    assert.equal(t.strategy, 'cooperative');
    assert.equal(timeout({ ms: 5, strategy: 'aggressive' }).strategy, 'aggressive');
    assert.deepEqual(t.contextKeys, []);
  });

  it('a fn that is not a function rejects with a TypeError', async () => {
    await assert.rejects(timeout({ ms: 5 }).execute(3 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
  });
});

describe('timeout: results that are not promises', () => {
  for (const strategy of ['cooperative', 'aggressive'] as const) {
    it(`${strategy}: undefined, null, numbers and plain objects settle at once`, async () => {
      const clock = new TestClock();
      const t = timeout({ ms: 10, strategy, clock });
      // biome-ignore lint/suspicious/noThenProperty: a `then` that is not a function makes no thenable
      const obj = { then: 1 };
      const plain = { a: 1 };
      const ps = [
        t.execute(() => undefined),
        t.execute(() => null),
        t.execute(() => 0),
        t.execute(() => obj),
        t.execute(() => plain),
      ];
      // Settled synchronously: nothing pending, nothing held.
      assert.equal(t.pending, 0);
      assert.equal(clock.refed, 0);
      assert.deepEqual(await Promise.all(ps), [undefined, null, 0, obj, plain]);
    });
  }
});

describe('timeout: the signal handed to fn', () => {
  it('is one signal per call, however often it is read', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    let first: AbortSignal | undefined;
    let ctx: PolicyContext | undefined;
    const p = t.execute((c) => {
      ctx = c;
      first = c.signal;
      return never();
    });
    assert.equal(ctx!.signal, first);
    clock.advance(10);
    assert.equal(first!.aborted, true);
    assert.equal(ctx!.signal, first);
    void p;
  });

  it('read for the first time after the deadline, it is already aborted with a TimeoutError', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    let ctx: PolicyContext | undefined;
    const d = deferred();
    const p = t.execute((c) => {
      ctx = c;
      return d.promise.then(() => {
        if (c.signal.aborted) throw c.signal.reason;
      });
    });
    clock.advance(10);
    d.resolve();
    await assert.rejects(p, (e: unknown) => isTimeoutError(e) && (e as TimeoutError).timeoutMs === 10);
    assert.equal(isTimeoutError(ctx!.signal.reason), true);
  });

  it('read for the first time after the caller aborted, it is aborted with the caller reason', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, clock });
    const ac = new AbortController();
    const d = deferred();
    let seen: AbortSignal | undefined;
    const p = t.execute(
      (c) =>
        d.promise.then(() => {
          seen = c.signal;
          return seen.aborted ? 'aborted' : 'not aborted';
        }),
      ac.signal,
    );
    ac.abort(new Error('caller left'));
    d.resolve();
    assert.equal(await p, 'aborted');
    assert.match(String(seen!.reason), /caller left/);
  });

  it('read after the call settled, it adds no listener to the caller signal', async () => {
    const t = timeout({ ms: 100, clock: new TestClock() });
    const ac = new AbortController();
    let ctx: PolicyContext | undefined;
    await t.execute(async (c) => {
      ctx = c;
    }, ac.signal);
    assert.equal(ctx!.signal.aborted, false);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('neverAbortedSignal as the caller signal gets no listeners (no leak warning under load)', async () => {
    const clock = new TestClock();
    for (const strategy of ['cooperative', 'aggressive'] as const) {
      const t = timeout({ ms: 100, strategy, clock });
      const ps = Array.from({ length: 20 }, () =>
        t.execute(({ signal }) => (signal.aborted ? 0 : never()), neverAbortedSignal),
      );
      assert.equal(getEventListeners(neverAbortedSignal, 'abort').length, 0);
      clock.advance(100);
      if (strategy === 'aggressive') await Promise.allSettled(ps);
    }
  });
});

describe('timeout: how calls fail', () => {
  it('aggressive: a rejection of fn before the deadline is the call rejection', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const boom = new Error('boom');
    await assert.rejects(
      t.execute(() => Promise.reject(boom)),
      (e: unknown) => e === boom,
    );
    assert.equal(t.pending, 0);
    assert.equal(clock.refed, 0);
  });

  it('aggressive: a deadline passing during the synchronous part of fn rejects with TimeoutError', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    await assert.rejects(
      t.execute(() => {
        clock.advance(100);
        return never();
      }),
      (e: unknown) => isTimeoutError(e),
    );
    assert.equal(t.pending, 0);
    assert.equal(clock.refed, 0);
  });

  it('cooperative: a failure after the deadline is a TimeoutError whose cause is that failure', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    const cause = new Error('socket closed');
    const p = t.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(cause))),
    );
    clock.advance(10);
    await assert.rejects(p, (e: unknown) => isTimeoutError(e) && (e as { cause?: unknown }).cause === cause);
  });

  it('cooperative: a TimeoutError or undefined after the deadline gives a TimeoutError with no cause', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    const own = t.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
    );
    const other = new TimeoutError(3);
    const inner = t.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(other))),
    );
    const nothing = t.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(undefined))),
    );
    clock.advance(10);
    for (const p of [own, inner, nothing]) {
      await assert.rejects(p, (e: unknown) => {
        assert.equal(isTimeoutError(e), true);
        assert.equal((e as TimeoutError).timeoutMs, 10);
        assert.equal(Object.hasOwn(e as object, 'cause'), false);
        return true;
      });
    }
  });

  it('cooperative: a failure before the deadline is passed through as is', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 10, clock });
    const inner = new TimeoutError(3);
    await assert.rejects(
      t.execute(() => Promise.reject(inner)),
      (e: unknown) => e === inner,
    );
  });
});

describe('timeout: the shared timer', () => {
  it('the timeout event carries ms', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 25, strategy: 'aggressive', clock });
    const events: unknown[] = [];
    t.on('timeout', (e) => events.push(e));
    const p = t.execute(never);
    clock.advance(25);
    await assert.rejects(p, isTimeoutError);
    assert.deepEqual(events, [{ ms: 25 }]);
  });

  it('is re-armed once per expiry, for the next deadline, never in small steps', async () => {
    const clock = new CountingClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    const a = t.execute(never);
    clock.advance(60);
    const b = t.execute(never);
    clock.advance(40); // a expires; the timer is re-armed for b's deadline
    await assert.rejects(a, isTimeoutError);
    assert.equal(clock.nextTimerAt(), clock.now() + 60);
    clock.advance(60);
    await assert.rejects(b, isTimeoutError);
    assert.equal(clock.set, 2);
    assert.equal(clock.pending, 0);
  });

  it('a call started by a timeout listener gets its own full deadline and no second timer', async () => {
    const clock = new TestClock();
    const t = timeout({ ms: 100, strategy: 'aggressive', clock });
    let started: Promise<unknown> | undefined;
    t.on('timeout', () => {
      started ??= t.execute(never);
    });
    const first = t.execute(never);
    clock.advance(100);
    await assert.rejects(first, isTimeoutError);
    assert.ok(started);
    assert.equal(clock.pending, 1);
    assert.equal(clock.refed, 1, 'the new call depends on the timer');
    assert.equal(clock.nextTimerAt(), clock.now() + 100);
    clock.advance(99);
    assert.equal(t.pending, 1);
    clock.advance(1);
    await assert.rejects(started, isTimeoutError);
    assert.equal(clock.pending, 0);
  });

  it('works with a clock whose timer handles have no ref()', async () => {
    const clock = new CountingClock(false);
    for (const strategy of ['cooperative', 'aggressive'] as const) {
      const t = timeout({ ms: 10, strategy, clock });
      const idle = t.execute(() => Promise.resolve(1)); // arms the timer, unref'd
      const held = t.execute(
        ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
      );
      assert.equal(await idle, 1);
      clock.advance(10);
      await assert.rejects(held, isTimeoutError);
    }
  });
});
