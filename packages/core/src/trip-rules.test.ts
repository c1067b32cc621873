import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CircuitBreaker, type CircuitBreakerOptions, circuitBreaker, type TripCounts } from './index.js';
import { TestClock } from './test-clock.js';

function make(trip: CircuitBreakerOptions['trip'], extra: CircuitBreakerOptions = {}) {
  const clock = new TestClock();
  const b = circuitBreaker({ clock, trip, openDuration: 1000, ...extra });
  const reasons: string[] = [];
  b.on('stateChange', (e) => reasons.push(e.reason));
  return { clock, b, reasons };
}

/** Settles `n` permits as success or failure, optionally taking `ms` each on the test clock. */
function record(b: CircuitBreaker, clock: TestClock, n: number, failure: boolean, ms = 0): void {
  for (let i = 0; i < n; i++) {
    const p = b.acquire();
    if (ms) clock.advance(ms);
    if (failure) p.failure(new Error('x'));
    else p.success();
  }
}

describe('trip rule: count window', () => {
  it('waits for minimumCalls, then opens at the failure-rate threshold', () => {
    const { b, clock, reasons } = make({
      kind: 'count',
      windowSize: 10,
      minimumCalls: 4,
      failureRateThreshold: 0.5,
    });
    record(b, clock, 3, true);
    assert.equal(b.state, 'closed', '3 calls < minimumCalls');
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['failure-rate']);
  });

  it('judges only the last N calls (old failures slide out)', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 4, minimumCalls: 4, failureRateThreshold: 0.75 });
    record(b, clock, 2, true); // F F
    record(b, clock, 2, false); // F F S S -> 50%
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true); // F S S F -> 50%
    record(b, clock, 1, true); // S S F F -> 50%
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true); // S F F F -> 75%
    assert.equal(b.state, 'open');
    clock.advance(1000);
    record(b, clock, 1, false);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().windowCalls, 0, 'the window starts empty after a close');
  });

  it('slow-call rate alone (slowCallDuration only) ignores failures', () => {
    const { b, clock, reasons } = make({
      kind: 'count',
      windowSize: 4,
      minimumCalls: 4,
      slowCallDuration: 100,
    });
    record(b, clock, 4, true, 10);
    assert.equal(b.state, 'closed', 'failures do not count for a slow-call-only rule');
    record(b, clock, 4, false, 101);
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['slow-call-rate']);
    assert.equal(b.stats().slowCalls, 4);
  });

  it('slow-call rate together with the failure rate', () => {
    const { b, clock, reasons } = make({
      kind: 'count',
      windowSize: 10,
      minimumCalls: 4,
      failureRateThreshold: 0.5,
      slowCallRateThreshold: 0.5,
      slowCallDuration: 100,
    });
    record(b, clock, 2, false, 200);
    record(b, clock, 1, false, 1);
    assert.equal(b.state, 'closed');
    record(b, clock, 1, false, 150);
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['slow-call-rate']);
    clock.advance(1000);
    record(b, clock, 1, false); // probe closes
    record(b, clock, 2, true, 1);
    record(b, clock, 2, false, 1);
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons.at(-1), 'failure-rate');
  });

  it('a call exactly at slowCallDuration is not slow', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 2, minimumCalls: 1, slowCallDuration: 100 });
    record(b, clock, 1, false, 100);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().slowCalls, 0);
  });
});

describe('trip rule: time window', () => {
  it('opens on the failure rate within the window', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 10_000, buckets: 10, minimumCalls: 4 });
    record(b, clock, 2, false);
    record(b, clock, 1, true);
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
  });

  it('failures older than the window no longer count', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 10_000,
      buckets: 10,
      minimumCalls: 2,
      failureCount: 3,
    });
    record(b, clock, 2, true);
    clock.advance(10_000);
    record(b, clock, 2, true);
    assert.equal(b.state, 'closed', 'the first two failures slid out of the window');
    clock.advance(5_000);
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
  });

  it('"5 failures in 30 s" (failureCount), whatever the rate', () => {
    const { b, clock, reasons } = make({ kind: 'time', windowMs: 30_000, failureCount: 5 });
    record(b, clock, 100, false);
    // Buckets are 3 s: failures 6 s apart stay within the window (24 s span).
    for (let i = 0; i < 4; i++) {
      record(b, clock, 1, true);
      clock.advance(6_000);
    }
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true); // t = 24 s: 5 failures in the window
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['failure-count']);
  });

  it('is correct after an idle gap much longer than the window', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, buckets: 4, minimumCalls: 4 });
    record(b, clock, 3, true); // 3 calls < minimumCalls
    clock.advance(3_600_000);
    assert.equal(b.stats().windowCalls, 0);
    record(b, clock, 1, true);
    assert.equal(b.state, 'closed', 'stale failures would make this 4 of 4');
    assert.equal(b.stats().windowFailures, 1);
    record(b, clock, 3, true);
    assert.equal(b.state, 'open');
  });

  it('a partial slide clears exactly the buckets that left the window', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, buckets: 4, minimumCalls: 100 });
    record(b, clock, 1, true); // bucket 0
    clock.advance(250);
    record(b, clock, 2, true); // bucket 1
    clock.advance(250);
    record(b, clock, 3, false); // bucket 2
    assert.equal(b.stats().windowCalls, 6);
    clock.advance(500); // bucket 0 leaves (the window is buckets 1..4)
    assert.equal(b.stats().windowCalls, 5);
    assert.equal(b.stats().windowFailures, 2);
    clock.advance(250); // bucket 1 leaves
    assert.equal(b.stats().windowCalls, 3);
    assert.equal(b.stats().windowFailures, 0);
  });

  it('holds at most one timer, and none once traffic stops', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 10_000, buckets: 10 });
    for (let i = 0; i < 1000; i++) record(b, clock, 1, false);
    assert.equal(clock.pending, 1);
    clock.advance(1_000);
    assert.equal(clock.pending, 0);
  });

  it('slow-call rate in a time window', () => {
    const { b, clock, reasons } = make({
      kind: 'time',
      windowMs: 10_000,
      minimumCalls: 2,
      slowCallRateThreshold: 0.5,
      slowCallDuration: 50,
    });
    record(b, clock, 1, false, 10);
    record(b, clock, 1, false, 60);
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['slow-call-rate']);
  });
});

describe('trip rule: custom predicate', () => {
  it('sees counts since the last close when no window is given', () => {
    const seen: TripCounts[] = [];
    const { b, clock } = make({
      kind: 'custom',
      predicate: (c) => {
        seen.push({ ...c });
        return c.failures >= 2 && c.successes === 0;
      },
    });
    record(b, clock, 1, true);
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
    assert.deepEqual(seen.at(-1), {
      calls: 2,
      successes: 0,
      failures: 2,
      slowCalls: 0,
      consecutiveFailures: 2,
      failureRate: 1,
      slowCallRate: 0,
    });
  });

  it('over a time window', () => {
    const { b, clock } = make({ kind: 'custom', windowMs: 1_000, predicate: (c) => c.failures >= 3 });
    record(b, clock, 2, true);
    clock.advance(1_000);
    record(b, clock, 2, true);
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
  });

  it('over the last N calls', () => {
    const { b, clock } = make({ kind: 'custom', windowSize: 3, predicate: (c) => c.failures === 3 });
    record(b, clock, 2, true);
    record(b, clock, 1, false);
    record(b, clock, 2, true);
    assert.equal(b.state, 'closed');
    record(b, clock, 1, true);
    assert.equal(b.state, 'open');
  });
});

describe('open duration', () => {
  it('grows with consecutive openings up to max, and resets after a close', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: { base: 1_000, multiplier: 2, max: 5_000 },
    });
    const periods: number[] = [];
    b.acquire().failure();
    for (let i = 0; i < 5; i++) {
      const wait = b.nextAttemptAt! - clock.now();
      periods.push(wait);
      clock.advance(wait);
      b.acquire().failure(); // the probe fails
    }
    assert.deepEqual(periods, [1_000, 2_000, 4_000, 5_000, 5_000]);
    clock.advance(b.nextAttemptAt! - clock.now());
    b.acquire().success();
    assert.equal(b.state, 'closed');
    b.acquire().failure();
    assert.equal(b.nextAttemptAt! - clock.now(), 1_000, 'back to base after a close');
    assert.equal(b.openDurationMs(), 2_000);
  });

  it('jitter shortens the period by at most the given fraction', () => {
    for (let i = 0; i < 50; i++) {
      const clock = new TestClock();
      const b = circuitBreaker({
        clock,
        trip: { kind: 'consecutive', threshold: 1 },
        openDuration: { base: 10_000, jitter: 0.2 },
      });
      b.acquire().failure();
      const d = b.nextAttemptAt! - clock.now();
      assert.ok(d > 8_000 && d <= 10_000, `period ${d}`);
    }
  });
});

describe('trip rules: judging restored windows', () => {
  it('a restored window over the threshold trips on the next outcome, even a success', () => {
    for (const trip of [
      { kind: 'count', windowSize: 10, minimumCalls: 4, failureRateThreshold: 0.9 },
      { kind: 'time', windowMs: 10_000, minimumCalls: 4, failureRateThreshold: 0.9 },
    ] as const) {
      const { b, clock } = make(trip);
      record(b, clock, 4, true); // trips at 4 of 4
      assert.equal(b.state, 'open');
      const snap = b.toJSON();
      // Restored as closed under a stricter rule: 4 failures of 4 is over 50%.
      const c = circuitBreaker({
        clock,
        trip: { ...trip, failureRateThreshold: 0.5 },
        initialState: { ...snap, state: 'closed', nextAttemptAt: undefined },
      });
      assert.equal(c.state, 'closed');
      record(c, clock, 1, false);
      assert.equal(c.state, 'open', `${trip.kind}: 4 of 5 failed`);
    }
  });
});

describe('trip rules: time window after buckets leave', () => {
  it('a success trips when expired buckets took the successes away', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 1_000,
      buckets: 2,
      minimumCalls: 2,
      failureRateThreshold: 0.5,
    });
    record(b, clock, 4, false); // bucket 1: S S S S
    clock.advance(500);
    record(b, clock, 2, true); // bucket 2: F F -> 2 of 6
    assert.equal(b.state, 'closed');
    clock.advance(500); // bucket 1 leaves: F F
    record(b, clock, 1, false); // F F S -> 2 of 3 = 67%
    assert.equal(b.state, 'open');
  });
});

describe('slow calls through execute', () => {
  it('measures each call from admission and counts it slow past slowCallDuration', async () => {
    const { b, clock, reasons } = make({
      kind: 'count',
      windowSize: 4,
      minimumCalls: 2,
      slowCallDuration: 100,
    });
    const slowCall = () =>
      b.execute(async () => {
        clock.advance(150);
        return 'late';
      });
    assert.equal(await slowCall(), 'late');
    assert.equal(b.stats().slowCalls, 1);
    assert.equal(b.state, 'closed', 'below minimumCalls');
    await slowCall();
    assert.equal(b.state, 'open');
    assert.deepEqual(reasons, ['slow-call-rate']);
  });

  it('stats totals never go backwards (reset clears the window, not the counters)', async () => {
    const { b, clock } = make({ kind: 'count', windowSize: 4, minimumCalls: 4 });
    record(b, clock, 2, true);
    record(b, clock, 1, false);
    b.reset();
    const s = b.stats();
    assert.deepEqual([s.calls, s.failures, s.successes, s.windowCalls, s.failureRate], [3, 2, 1, 0, 0]);
  });
});

describe('time windows share one bucket timer', () => {
  it('1,000 busy time-window breakers on one clock hold one timer, and none once traffic stops', () => {
    const clock = new TestClock();
    const all = Array.from({ length: 1_000 }, () =>
      circuitBreaker({ clock, trip: { kind: 'time', windowMs: 10_000, buckets: 10 } }),
    );
    for (const b of all) record(b, clock, 3, false);
    assert.equal(clock.pending, 1);
    clock.advance(1_000);
    assert.equal(clock.pending, 0);
    for (const b of all) record(b, clock, 1, true);
    assert.equal(clock.pending, 1);
    assert.ok(all.every((b) => b.stats().windowCalls === 4));
    clock.advance(10_000);
    assert.ok(all.every((b) => b.stats().windowCalls === 0));
    assert.equal(clock.pending, 0);
  });
});
