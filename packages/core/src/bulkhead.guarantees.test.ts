// Guarantees of bulkhead() that its first tests left unpinned (found by mutation testing,
// `npm run mutation -- bulkhead`): messages, the `rejected` event, the context handed to fn, an
// already-aborted caller, a waiter leaving from the middle of the queue, an unlimited queue wait
// arming no timer, `ref: false` and clocks without `ref()`, and the one queue timer re-armed once
// per expiry rather than in small steps.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import {
  type BulkheadRejectedError,
  bulkhead,
  isBulkheadRejectedError,
  neverAbortedSignal,
  type PolicyContext,
  type TimerHandle,
} from './index.js';
import { TestClock } from './test-clock.js';

function gate() {
  let open!: () => void;
  const promise = new Promise<void>((res) => {
    open = res;
  });
  return { promise, open };
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
    return { unref: () => h.unref(), inner: h } as TimerHandle;
  }
  override clearTimeout(handle: TimerHandle): void {
    super.clearTimeout((handle as { inner?: TimerHandle }).inner ?? handle);
  }
}

describe('bulkhead: options and shape', () => {
  it('messages name the policy and the option', () => {
    assert.throws(() => bulkhead(null as never), {
      message: 'bulkhead: option "options" must be an object, got null',
    });
    assert.throws(
      () => bulkhead({ maxConcurrent: 1, clock: {} as never }),
      (e: unknown) => {
        assert.match((e as Error).message, /^bulkhead: option "clock" must be a Clock/);
        return true;
      },
    );
  });

  it('kind and contextKeys', () => {
    const b = bulkhead({ maxConcurrent: 1 });
    assert.equal(b.kind, 'bulkhead');
    assert.deepEqual(b.contextKeys, []);
  });

  it('a fn that is not a function rejects with a TypeError', async () => {
    await assert.rejects(bulkhead({ maxConcurrent: 1 }).execute(3 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
  });
});

describe('bulkhead: calls', () => {
  it('fn gets the caller signal, or neverAbortedSignal without one', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock: new TestClock() });
    const seen: AbortSignal[] = [];
    const take = (ctx: PolicyContext) => {
      seen.push(ctx.signal);
    };
    await b.execute(take);
    const ac = new AbortController();
    await b.execute(take, ac.signal);
    await b.execute(take, neverAbortedSignal);
    // Also after waiting in the queue.
    const g = gate();
    const first = b.execute(() => g.promise);
    const queued = b.execute(take, ac.signal);
    g.open();
    await Promise.all([first, queued]);
    // By identity: deepEqual finds any two unaborted signals equal.
    const name = (sig: AbortSignal) =>
      sig === ac.signal ? 'caller' : sig === neverAbortedSignal ? 'never' : 'other';
    assert.deepEqual(seen.map(name), ['never', 'caller', 'never', 'caller']);
  });

  it('an already-aborted caller is rejected with its reason without running fn, even with a free slot', async () => {
    const b = bulkhead({ maxConcurrent: 1, clock: new TestClock() });
    let ran = false;
    await assert.rejects(
      b.execute(
        () => {
          ran = true;
        },
        AbortSignal.abort(new Error('gone')),
      ),
      /gone/,
    );
    assert.equal(ran, false);
    assert.deepEqual([b.stats().running, b.stats().executed], [0, 0]);
  });

  it('waiters with neverAbortedSignal add no listener to it', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 20, clock: new TestClock() });
    const g = gate();
    const ps = [b.execute(() => g.promise)];
    for (let i = 0; i < 20; i++) ps.push(b.execute(async () => {}, neverAbortedSignal));
    assert.equal(getEventListeners(neverAbortedSignal, 'abort').length, 0);
    g.open();
    await Promise.all(ps);
  });

  it('a waiter aborted in the middle of the queue leaves the others in order', async () => {
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 3, clock: new TestClock() });
    const g = gate();
    const order: string[] = [];
    const running = b.execute(() => g.promise);
    const acs = [new AbortController(), new AbortController(), new AbortController()];
    const ps = ['a', 'b', 'c'].map((name, i) =>
      b.execute(() => {
        order.push(name);
      }, acs[i]!.signal),
    );
    acs[1]!.abort(new Error('b left'));
    await assert.rejects(ps[1]!, /b left/);
    assert.equal(b.stats().queued, 2);
    g.open();
    await Promise.all([running, ps[0], ps[2]]);
    assert.deepEqual(order, ['a', 'c']);
    // The tail can leave too, and a new waiter joins after the head.
    const g2 = gate();
    const r2 = b.execute(() => g2.promise);
    const ac = new AbortController();
    const x = b.execute(() => {
      order.push('x');
    });
    const y = b.execute(() => {
      order.push('y');
    }, ac.signal);
    ac.abort(new Error('y left'));
    await assert.rejects(y, /y left/);
    const z = b.execute(() => {
      order.push('z');
    });
    g2.open();
    await Promise.all([r2, x, z]);
    assert.deepEqual(order, ['a', 'c', 'x', 'z']);
  });
});

describe('bulkhead: rejections', () => {
  it('the rejected event and the error say why', async () => {
    const clock = new TestClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 10, clock });
    const events: unknown[] = [];
    const sub = b.on('rejected', (e) => events.push(e));
    const g = gate();
    const running = b.execute(() => g.promise);
    const waiting = b.execute(async () => 1);
    await assert.rejects(
      b.execute(async () => 2),
      (e: unknown) => {
        assert.equal(isBulkheadRejectedError(e), true);
        assert.equal((e as BulkheadRejectedError).reason, 'full');
        return true;
      },
    );
    clock.advance(10);
    await assert.rejects(waiting, (e: unknown) => {
      assert.equal((e as BulkheadRejectedError).reason, 'queue-timeout');
      assert.equal((e as BulkheadRejectedError).maxConcurrent, 1);
      assert.equal((e as BulkheadRejectedError).maxQueue, 1);
      return true;
    });
    assert.deepEqual(events, [{ reason: 'full' }, { reason: 'queue-timeout' }]);
    assert.equal(b.stats().rejected, 2);
    sub.dispose();
    const refill = b.execute(async () => 3);
    await assert.rejects(
      b.execute(async () => 4),
      isBulkheadRejectedError,
    );
    assert.equal(events.length, 2);
    g.open();
    await running;
    assert.equal(await refill, 3);
  });
});

describe('bulkhead: the queue timer', () => {
  it('no queueTimeoutMs: waiting arms no timer and never times out', async () => {
    const clock = new TestClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, clock });
    const g = gate();
    const running = b.execute(() => g.promise);
    const waiting = b.execute(async () => 'ran');
    assert.equal(clock.pending, 0);
    clock.advance(1e12);
    assert.equal(b.stats().queued, 1);
    g.open();
    await running;
    assert.equal(await waiting, 'ran');
  });

  it('is re-armed once per expiry, for the next deadline', async () => {
    const clock = new CountingClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100, clock });
    const g = gate();
    const running = b.execute(() => g.promise);
    const w1 = b.execute(async () => 1);
    clock.advance(60);
    const w2 = b.execute(async () => 2);
    clock.advance(40);
    await assert.rejects(w1, isBulkheadRejectedError);
    assert.equal(clock.nextTimerAt(), clock.now() + 60);
    clock.advance(60);
    await assert.rejects(w2, isBulkheadRejectedError);
    assert.equal(clock.set, 2);
    assert.equal(clock.pending, 0);
    g.open();
    await running;
  });

  it('ref: false never refs the timer, even when a waiter arrives at a timer left armed', async () => {
    const clock = new TestClock();
    const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100, ref: false, clock });
    const g = gate();
    const running = b.execute(() => g.promise);
    const ac = new AbortController();
    const a = b.execute(async () => 1, ac.signal);
    ac.abort(new Error('a left'));
    await assert.rejects(a, /a left/);
    assert.equal(clock.pending, 1, 'the timer stays armed');
    const c = b.execute(async () => 3);
    const d = b.execute(async () => 4);
    assert.equal(clock.refed, 0);
    g.open();
    await running;
    assert.deepEqual(await Promise.all([c, d]), [3, 4]);
  });

  it('a timer left armed is ref’d again for a new waiter (ref: true), also with a clock without ref()', async () => {
    for (const withRef of [true, false]) {
      const clock = new CountingClock(withRef);
      const b = bulkhead({ maxConcurrent: 1, maxQueue: 2, queueTimeoutMs: 100, clock });
      const g = gate();
      const running = b.execute(() => g.promise);
      const ac = new AbortController();
      const a = b.execute(async () => 1, ac.signal);
      ac.abort(new Error('a left'));
      await assert.rejects(a, /a left/);
      const c = b.execute(async () => 3);
      if (withRef) assert.equal(clock.refed, 1);
      g.open();
      await running;
      assert.equal(await c, 3);
    }
  });
});
