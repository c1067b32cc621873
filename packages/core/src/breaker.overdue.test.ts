/**
 * The open period ends when the clock says so, not when the breaker's own timer happens to run.
 * A caller that waits exactly `retryAfter` on its own timer may run before the breaker's timer
 * (both are due at the same moment, or the loop is busy): it must be let through as the probe,
 * not rejected with `retryAfter: 0` (which costs a retry attempt, or spins a caller that waits it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Clock, circuitBreaker, isCircuitOpenError, type TimerHandle } from './index.js';
import { TestClock } from './test-clock.js';

/** The test clock's time, with timers that run only when the test says so. */
function lateTimers() {
  const clock = new TestClock();
  const pending = new Set<() => void>();
  const busy: Clock = {
    now: () => clock.now(),
    setTimeout: (fn) => {
      pending.add(fn);
      const handle: TimerHandle = { unref: () => handle, ref: () => handle };
      (handle as unknown as { fn: () => void }).fn = fn;
      return handle;
    },
    clearTimeout: (h) => {
      pending.delete((h as unknown as { fn: () => void }).fn);
    },
  };
  return { clock, busy, pending };
}

const fail = () => Promise.reject(new Error('down'));

describe('open period over by the clock, breaker timer not yet run', () => {
  for (const eager of [false, true]) {
    it(`execute() after exactly retryAfter is the probe (${eager ? 'eager' : 'lazy'} half-open)`, async () => {
      const { clock, busy, pending } = lateTimers();
      const b = circuitBreaker({
        clock: busy,
        trip: { kind: 'consecutive', threshold: 1 },
        openDuration: 1_000,
        eagerHalfOpen: eager,
      });
      await assert.rejects(b.execute(fail));
      assert.equal(b.state, 'open');
      // A rejection while open arms (lazy) or finds (eager) the breaker's timer.
      const e = await b.execute(() => 'x').catch((err: unknown) => err);
      assert.ok(isCircuitOpenError(e));
      assert.equal(e.retryAfter, 1_000);
      assert.ok(pending.size > 0, 'a timer is pending');
      clock.advance(1_000); // the caller's wait is over; the breaker's timer has not run
      assert.equal(await b.execute(() => 'probe'), 'probe');
      assert.equal(b.state, 'closed');
    });
  }

  it('acquire() after exactly retryAfter gets the probe permit', async () => {
    const { clock, busy } = lateTimers();
    const b = circuitBreaker({ clock: busy, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 500 });
    await assert.rejects(b.execute(fail));
    assert.throws(() => b.acquire(), isCircuitOpenError);
    clock.advance(500);
    const p = b.acquire();
    assert.equal(b.state, 'half-open');
    p.success();
    assert.equal(b.state, 'closed');
  });

  it('before the period is over the rejection still says how long is left', async () => {
    const { clock, busy } = lateTimers();
    const b = circuitBreaker({
      clock: busy,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 1_000,
    });
    await assert.rejects(b.execute(fail));
    await assert.rejects(b.execute(() => 'x'));
    clock.advance(999);
    const e = await b.execute(() => 'x').catch((err: unknown) => err);
    assert.ok(isCircuitOpenError(e));
    assert.equal(e.retryAfter, 1);
  });
});
