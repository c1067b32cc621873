/**
 * A time window under a busy event loop: the clock moves on but no timer runs (the loop never
 * gets to them). stats(), metrics and the trip decision must still see the same window, and the
 * window must hold the calls of its last `windowMs`, not none.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Clock, circuitBreaker, type TimerHandle, type TripCounts } from './index.js';
import { TestClock } from './test-clock.js';

/** The test clock's time, with timers that never run: an event loop busy for the whole test. */
function busyLoop() {
  const clock = new TestClock();
  let timers = 0;
  const handle: TimerHandle = { unref: () => handle };
  const busy: Clock = {
    now: () => clock.now(),
    setTimeout: () => {
      timers++;
      return handle;
    },
    clearTimeout: () => {},
  };
  return { clock, busy, timers: () => timers };
}

describe('time window under a busy event loop', () => {
  it('3,000 calls over 1.5 s with no timer run: the 1 s window holds the last second, not nothing', () => {
    const { clock, busy } = busyLoop();
    const b = circuitBreaker({
      clock: busy,
      trip: { kind: 'time', windowMs: 1_000, buckets: 10, failureRateThreshold: 0.5 },
    });
    for (let i = 0; i < 3_000; i++) {
      clock.advance(0.5);
      b.tryAcquire()!.success();
    }
    // At 1,500 ms the window is buckets [600, 1,500]: 1,801 calls. A call may be counted up to
    // 32 calls late into the bucket before its own (the clock is read every 32 calls).
    const s = b.stats();
    assert.ok(s.windowCalls >= 1_801 - 32 && s.windowCalls <= 1_801, `windowCalls ${s.windowCalls}`);
    assert.equal(s.calls, 3_000);
  });

  it('the trip rule judges the window stats() shows', () => {
    const { clock, busy } = busyLoop();
    let judged: TripCounts | undefined;
    const b = circuitBreaker({
      clock: busy,
      trip: {
        kind: 'custom',
        windowMs: 1_000,
        buckets: 10,
        predicate: (c) => {
          judged = { ...c };
          return false;
        },
      },
    });
    // 2,900 calls: the last ones are at 1,434-1,450 ms, inside one bucket (the clock was read at
    // most 32 calls before the last), so the last judgement and stats() are at the same index.
    for (let i = 0; i < 2_900; i++) {
      clock.advance(0.5);
      b.tryAcquire()!.success();
    }
    const s = b.stats();
    assert.equal(judged!.calls, s.windowCalls, 'the last judgement saw the window stats() shows');
    assert.ok(s.windowCalls > 1_000, `windowCalls ${s.windowCalls}`);
    b.tryAcquire()!.failure(new Error('x')); // at the same instant
    assert.equal(judged!.calls, s.windowCalls + 1);
    assert.equal(judged!.failures, s.windowFailures + 1);
  });

  it('when the rule trips, stats() shows the window that tripped it', () => {
    const { clock, busy } = busyLoop();
    const b = circuitBreaker({
      clock: busy,
      trip: { kind: 'time', windowMs: 1_000, buckets: 10, minimumCalls: 10, failureRateThreshold: 0.5 },
    });
    for (let i = 0; i < 2_000; i++) {
      clock.advance(0.5);
      b.tryAcquire()!.success();
    }
    let failures = 0;
    while (b.state === 'closed' && failures < 5_000) {
      clock.advance(0.5);
      b.tryAcquire()!.failure(new Error('x'));
      failures++;
    }
    assert.equal(b.state, 'open');
    const s = b.stats();
    assert.ok(s.windowCalls >= 10, `windowCalls ${s.windowCalls}`);
    assert.ok(s.failureRate >= 0.5, `failureRate ${s.failureRate} at the trip`);
    // With every call in the bucket where the stretch began, 2,000 failures would be needed.
    assert.ok(failures < 1_000, `tripped after ${failures} failures`);
  });

  it('reading stats() of an idle breaker arms no timer', () => {
    const { clock, busy, timers } = busyLoop();
    const b = circuitBreaker({ clock: busy, trip: { kind: 'time', windowMs: 1_000 } });
    for (let i = 0; i < 100; i++) {
      clock.advance(250);
      b.stats();
    }
    assert.equal(timers(), 0);
  });
});

describe('time window: the shared bucket index', () => {
  it('a read of one breaker brings the index forward for another on the same clock', () => {
    const { clock, busy } = busyLoop();
    const trip = { kind: 'time', windowMs: 400, buckets: 4 } as const;
    const a = circuitBreaker({ clock: busy, trip });
    const b = circuitBreaker({ clock: busy, trip });
    b.tryAcquire()!.success(); // reads the clock: bucket 0
    clock.advance(400); // bucket 4; no timer runs
    a.stats();
    b.tryAcquire()!.success(); // must count in bucket 4, not in the stale bucket 0
    assert.equal(b.stats().windowCalls, 1);
  });

  it('a clock that steps back keeps counting in the newest bucket', () => {
    let now = 1_000_000;
    const stepping: Clock = {
      now: () => now,
      setTimeout: () => ({ unref: () => ({}) as TimerHandle }) as TimerHandle,
      clearTimeout: () => {},
    };
    const b = circuitBreaker({ clock: stepping, trip: { kind: 'time', windowMs: 400, buckets: 4 } });
    b.tryAcquire()!.success();
    now += 300;
    b.stats(); // the window moves to bucket +3
    for (let i = 0; i < 5; i++) b.tryAcquire()!.success(); // counted in bucket +3
    now -= 200; // the clock steps back two buckets
    for (let i = 0; i < 40; i++) b.tryAcquire()!.success();
    now += 200;
    assert.equal(b.stats().windowCalls, 46, 'no call lost to a window that moved backwards');
  });

  it('under traffic, one bucket-end timer per bucket', () => {
    const clock = new TestClock();
    let armed = 0;
    const counting: Clock = {
      now: () => clock.now(),
      setTimeout: (fn, ms) => {
        armed++;
        return clock.setTimeout(fn, ms);
      },
      clearTimeout: (h) => clock.clearTimeout(h),
    };
    const b = circuitBreaker({ clock: counting, trip: { kind: 'time', windowMs: 1_000, buckets: 10 } });
    for (let i = 0; i < 1_000; i++) {
      clock.advance(1); // 1 s of traffic: 10 buckets
      b.tryAcquire()!.success();
    }
    assert.ok(armed <= 11, `${armed} timers for 10 buckets`);
  });
});
