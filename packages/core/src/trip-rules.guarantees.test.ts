/**
 * Guarantees of the trip rules that no other test pins down (found by mutation testing): what
 * leaves a window, what a reset clears, when a success must still be judged, and how a restored
 * window is clamped to the rule it is restored into.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BreakerSnapshot,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  circuitBreaker,
} from './index.js';
import { TestClock } from './test-clock.js';

function make(trip: CircuitBreakerOptions['trip']) {
  const clock = new TestClock();
  const b = circuitBreaker({ clock, trip, openDuration: 1_000 });
  return { clock, b };
}

/** One call: `slow` calls take 200 ms (over a 100 ms slowCallDuration). */
function call(b: CircuitBreaker, clock: TestClock, o: { slow?: boolean; failure?: boolean } = {}): void {
  const p = b.acquire();
  if (o.slow) clock.advance(200);
  if (o.failure) p.failure(new Error('x'));
  else p.success();
}

const slowCalls = (b: CircuitBreaker) => Math.round(b.stats().slowCallRate * b.stats().windowCalls);

describe('trip rules: slow calls leave the window', () => {
  it('count window: a slow call that slides out no longer counts (the slow-call rate can fall)', () => {
    const { b, clock } = make({
      kind: 'count',
      windowSize: 4,
      minimumCalls: 4,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.75,
    });
    call(b, clock, { slow: true });
    for (let i = 0; i < 3; i++) call(b, clock);
    assert.equal(slowCalls(b), 1);
    call(b, clock); // the slow call slides out
    assert.equal(slowCalls(b), 0);
    assert.equal(b.stats().slowCallRate, 0);
    call(b, clock, { slow: true });
    call(b, clock, { slow: true }); // 2 of the last 4
    assert.equal(b.stats().slowCallRate, 0.5);
    assert.equal(b.state, 'closed', 'a slow call counted forever would make it 3 of 4 = 75%');
  });

  it('count window: a failure that slides out no longer counts', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 3, minimumCalls: 3, failureRateThreshold: 0.6 });
    call(b, clock, { failure: true });
    call(b, clock);
    call(b, clock); // 1 of 3
    call(b, clock); // the failure slides out
    assert.equal(b.stats().windowFailures, 0);
    call(b, clock, { failure: true });
    assert.equal(b.state, 'closed', '1 of the last 3, not 2');
  });

  it('time window: slow calls in buckets that left the window no longer count', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 10_000,
      buckets: 4,
      minimumCalls: 4,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
    });
    call(b, clock, { slow: true }); // ends at 200 ms: bucket 0
    clock.advance(2_500);
    call(b, clock);
    call(b, clock);
    call(b, clock); // 1 slow of 4; the fast ones in bucket 1
    assert.equal(slowCalls(b), 1);
    clock.advance(7_500); // 10,200 ms: bucket 0 leaves, bucket 1 stays
    assert.equal(b.stats().windowCalls, 3);
    assert.equal(slowCalls(b), 0);
    call(b, clock, { slow: true });
    call(b, clock, { slow: true }); // 2 of 5 = 40%; with the old slow call kept, 3 of 5
    assert.equal(b.state, 'closed');
  });

  it('time window: after an idle gap longer than the window, no slow call is left', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 1_000,
      buckets: 4,
      minimumCalls: 1,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
    });
    call(b, clock);
    call(b, clock);
    call(b, clock, { slow: true }); // 1 of 3
    clock.advance(5_000);
    assert.equal(b.stats().windowCalls, 0);
    assert.equal(b.stats().slowCallRate, 0);
    call(b, clock);
    call(b, clock);
    call(b, clock);
    call(b, clock, { slow: true }); // 1 of 4 = 25%; with the old slow call kept, 2 of 4 = 50%
    assert.equal(b.state, 'closed');
  });

  for (const trip of [
    { kind: 'count', windowSize: 10, minimumCalls: 5, slowCallDuration: 100, slowCallRateThreshold: 0.5 },
    { kind: 'time', windowMs: 10_000, minimumCalls: 5, slowCallDuration: 100, slowCallRateThreshold: 0.5 },
    { kind: 'custom', slowCallDuration: 100, predicate: (c) => c.slowCalls >= 3 },
  ] satisfies CircuitBreakerOptions['trip'][])
    it(`${trip.kind}: reset() clears slow calls and failures from the window`, () => {
      const { b, clock } = make(trip);
      call(b, clock, { slow: true });
      call(b, clock, { slow: true, failure: true });
      assert.equal(b.stats().windowCalls, 2);
      b.reset();
      assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures, b.stats().slowCallRate], [0, 0, 0]);
      call(b, clock, { slow: true });
      call(b, clock);
      call(b, clock, { slow: true }); // 2 slow of 3 since the reset: the custom rule needs 3
      call(b, clock);
      call(b, clock); // 2 of 5 < 50%
      assert.equal(b.state, 'closed');
    });
});

describe('trip rules: which successes are judged', () => {
  it('count window: the success that brings the window to minimumCalls is judged', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 10, minimumCalls: 3, failureRateThreshold: 0.5 });
    call(b, clock, { failure: true });
    call(b, clock, { failure: true });
    assert.equal(b.state, 'closed', 'under minimumCalls');
    call(b, clock); // 2 of 3
    assert.equal(b.state, 'open');
  });

  it('time window: the success that brings the window to minimumCalls is judged', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, minimumCalls: 3, failureRateThreshold: 0.5 });
    call(b, clock, { failure: true });
    call(b, clock, { failure: true });
    assert.equal(b.state, 'closed');
    call(b, clock);
    assert.equal(b.state, 'open');
  });

  it('a fast success never trips a rate rule past minimumCalls (and a slow one can)', () => {
    const { b, clock } = make({
      kind: 'count',
      windowSize: 4,
      minimumCalls: 2,
      failureRateThreshold: 1,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
    });
    call(b, clock);
    call(b, clock);
    call(b, clock);
    assert.equal(b.state, 'closed');
    call(b, clock, { slow: true }); // 1 of 4 = 25%
    assert.equal(b.state, 'closed');
    call(b, clock, { slow: true }); // 2 of 4 = 50%: a slow success is judged
    assert.equal(b.state, 'open');
  });

  it('time window: failureCount opens whatever minimumCalls says', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, minimumCalls: 100, failureCount: 2 });
    call(b, clock, { failure: true });
    assert.equal(b.state, 'closed');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open');
  });

  it('rates are judged at the threshold, not only over it', () => {
    const failures = make({ kind: 'count', windowSize: 4, minimumCalls: 4, failureRateThreshold: 0.25 });
    for (let i = 0; i < 3; i++) call(failures.b, failures.clock);
    call(failures.b, failures.clock, { failure: true }); // exactly 25%
    assert.equal(failures.b.state, 'open');
    const slow = make({
      kind: 'count',
      windowSize: 4,
      minimumCalls: 4,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.25,
    });
    for (let i = 0; i < 3; i++) call(slow.b, slow.clock);
    call(slow.b, slow.clock, { slow: true });
    assert.equal(slow.b.state, 'open');
  });

  it('a call exactly minimumCalls - 1 into the window is not judged as a rate', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, minimumCalls: 3, failureRateThreshold: 0.5 });
    call(b, clock, { failure: true });
    call(b, clock, { failure: true }); // 2 of 2 = 100%, but only 2 calls
    assert.equal(b.state, 'closed');
  });
});

describe('trip rules: restoring a window clamps it to the rule', () => {
  const base = (window: BreakerSnapshot['window']): BreakerSnapshot => ({
    version: 1,
    name: 'r',
    state: 'closed',
    savedAt: 0,
    openings: 0,
    consecutiveFailures: 0,
    totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
    window,
  });
  const restore = (trip: CircuitBreakerOptions['trip'], window: BreakerSnapshot['window']) =>
    circuitBreaker({ clock: new TestClock(), trip, initialState: base(window) });

  it('count window: a longer snapshot keeps its newest outcomes', () => {
    // 1 = failure, 2 = slow, 0 = fast success; oldest first.
    const b = restore(
      { kind: 'count', windowSize: 3, slowCallDuration: 100 },
      {
        kind: 'count',
        outcomes: [1, 1, 1, 0, 2, 3],
      },
    );
    const s = b.stats();
    assert.deepEqual([s.windowCalls, s.windowFailures], [3, 1]);
    assert.equal(Math.round(s.slowCallRate * 3), 2);
    assert.deepEqual(b.toJSON().window, { kind: 'count', outcomes: [0, 2, 3] });
  });

  it('time window: counts are clamped (failures and slow calls at most the calls, no negatives)', () => {
    const clock = new TestClock();
    const epoch = Math.floor(clock.now() / 250);
    const b = circuitBreaker({
      clock,
      trip: { kind: 'time', windowMs: 1_000, buckets: 4, slowCallDuration: 100 },
      initialState: base({
        kind: 'time',
        bucketMs: 250,
        epoch,
        buckets: [
          [2, 5, 9],
          [-3, 1, 1],
          [4.7, 1.2, 0],
          ['x' as never, 1, 1],
        ],
      }),
    });
    const s = b.stats();
    // [2, 2, 2] + [0, 0, 0] + [4, 1, 0] + [0, 0, 0]
    assert.deepEqual([s.windowCalls, s.windowFailures], [6, 3]);
    assert.equal(Math.round(s.slowCallRate * 6), 2);
  });

  it('time window: a snapshot of another bucket length, bucket count or epoch is ignored', () => {
    const clock = new TestClock();
    const epoch = Math.floor(clock.now() / 250);
    const trip = { kind: 'time', windowMs: 1_000, buckets: 4 } as const;
    const buckets = [
      [1, 1, 0],
      [1, 1, 0],
      [1, 1, 0],
      [1, 1, 0],
    ];
    for (const window of [
      { kind: 'time', bucketMs: 100, epoch, buckets },
      { kind: 'time', bucketMs: 250, epoch, buckets: buckets.slice(1) },
      { kind: 'time', bucketMs: 250, epoch: -1, buckets },
      { kind: 'time', bucketMs: 250, epoch: 1.5, buckets },
      { kind: 'count', outcomes: [1, 1] },
    ] as BreakerSnapshot['window'][]) {
      const b = circuitBreaker({ clock, trip, initialState: base(window) });
      assert.equal(b.stats().windowCalls, 0, JSON.stringify(window));
    }
    const ok = circuitBreaker({
      clock,
      trip,
      initialState: base({ kind: 'time', bucketMs: 250, epoch, buckets }),
    });
    assert.equal(ok.stats().windowCalls, 4);
  });

  it('a since-close total is clamped too', () => {
    const b = restore(
      { kind: 'custom', predicate: () => false },
      {
        kind: 'total',
        calls: 3,
        failures: 7,
        slowCalls: -1,
      },
    );
    assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures, b.stats().slowCallRate], [3, 3, 0]);
    const inf = restore(
      { kind: 'custom', predicate: () => false },
      {
        kind: 'total',
        calls: Number.POSITIVE_INFINITY,
        failures: 1,
        slowCalls: 0,
      },
    );
    assert.deepEqual([inf.stats().windowCalls, inf.stats().windowFailures], [0, 0]);
    const c = restore({ kind: 'consecutive' }, { kind: 'total', calls: 2.9, failures: 5, slowCalls: 0 });
    assert.deepEqual([c.stats().windowCalls, c.stats().windowFailures], [2, 2]);
  });
});

describe('trip rules: bad options name the field', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [
      { kind: 'time', windowMs: Infinity },
      'circuitBreaker: option "trip.windowMs" must be a finite number >= 1, got Infinity',
    ],
    [{ kind: 'time', windowMs: 0 }, 'circuitBreaker: option "trip.windowMs" must be a number >= 1, got 0'],
    [
      { kind: 'time', buckets: 1001 },
      'circuitBreaker: option "trip.buckets" must be an integer >= 1 and <= 1000, got 1001',
    ],
    [
      { kind: 'time', buckets: 2.5 },
      'circuitBreaker: option "trip.buckets" must be an integer >= 1 and <= 1000, got 2.5',
    ],
    [
      { kind: 'time', minimumCalls: 0 },
      'circuitBreaker: option "trip.minimumCalls" must be an integer >= 1, got 0',
    ],
    [
      { kind: 'time', failureCount: 0 },
      'circuitBreaker: option "trip.failureCount" must be an integer >= 1, got 0',
    ],
    [
      { kind: 'time', window: 5 },
      'circuitBreaker: option "trip.window" must be one of the known options (kind, windowMs, buckets, minimumCalls, failureRateThreshold, failureCount, slowCallRateThreshold, slowCallDuration), got 5',
    ],
    [
      { kind: 'count', windowSize: 5, minimumCalls: 6 },
      'circuitBreaker: option "trip.minimumCalls" must be an integer >= 1 and <= 5, got 6',
    ],
    [
      { kind: 'count', windowSize: 1_000_001 },
      'circuitBreaker: option "trip.windowSize" must be an integer >= 1 and <= 1000000, got 1000001',
    ],
    [
      { kind: 'count', windowMs: 10 },
      'circuitBreaker: option "trip.windowMs" must be one of the known options (kind, windowSize, window, minimumCalls, failureRateThreshold, slowCallRateThreshold, slowCallDuration), got 10',
    ],
    [
      { kind: 'count', slowCallRateThreshold: 0.5 },
      'circuitBreaker: option "trip.slowCallDuration" must be a number >= 0 when slowCallRateThreshold is set, got undefined',
    ],
    [
      { kind: 'count', slowCallDuration: 10, slowCallRateThreshold: 0 },
      'circuitBreaker: option "trip.slowCallRateThreshold" must be a number > 0 and <= 1, got 0',
    ],
    [
      { kind: 'count', failureRateThreshold: 1.5 },
      'circuitBreaker: option "trip.failureRateThreshold" must be a number > 0 and <= 1, got 1.5',
    ],
    [
      { kind: 'count', slowCallDuration: -1 },
      'circuitBreaker: option "trip.slowCallDuration" must be a number >= 0, got -1',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: 10, windowSize: 5 },
      'circuitBreaker: option "trip.windowSize" must be absent when windowMs is given, got 5',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: 10, window: 5 },
      'circuitBreaker: option "trip.window" must be absent when windowMs is given, got 5',
    ],
    [
      { kind: 'custom', predicate: () => false, buckets: 5 },
      'circuitBreaker: option "trip.buckets" must be absent unless windowMs is given, got 5',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: Infinity },
      'circuitBreaker: option "trip.windowMs" must be a finite number >= 1, got Infinity',
    ],
    [
      { kind: 'custom', predicate: () => false, windowSize: 0 },
      'circuitBreaker: option "trip.windowSize" must be an integer >= 1 and <= 1000000, got 0',
    ],
    [
      { kind: 'custom', predicate: () => false, minimumCalls: 3 },
      'circuitBreaker: option "trip.minimumCalls" must be one of the known options (kind, predicate, windowMs, buckets, windowSize, window, slowCallDuration), got 3',
    ],
    [
      { kind: 'consecutive', threshold: 0 },
      'circuitBreaker: option "trip.threshold" must be an integer >= 1, got 0',
    ],
    [
      { kind: 'consecutive', threshold: 1.5 },
      'circuitBreaker: option "trip.threshold" must be an integer >= 1, got 1.5',
    ],
    [{ kind: 'custom' }, 'circuitBreaker: option "trip.predicate" must be a function, got undefined'],
  ];
  for (const [trip, message] of cases)
    it(message.slice(14, 100), () => {
      assert.throws(() => circuitBreaker({ trip: trip as never }), { name: 'InvalidOptionError', message });
    });
});

describe('trip rules: defaults', () => {
  it('consecutive: 5 failures in a row', () => {
    const { b, clock } = make({ kind: 'consecutive' });
    for (let i = 0; i < 4; i++) call(b, clock, { failure: true });
    assert.equal(b.state, 'closed');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open');
  });

  it('count: a window smaller than 20 needs as many calls as it holds; 50% by default', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 4 });
    call(b, clock);
    call(b, clock);
    call(b, clock, { failure: true });
    assert.equal(b.state, 'closed', '3 calls, window of 4');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open', '2 of 4');
  });

  it('count: 100 calls, judged from 20', () => {
    const { b, clock } = make({ kind: 'count' });
    for (let i = 0; i < 19; i++) call(b, clock, { failure: true });
    assert.equal(b.state, 'closed');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open');
    const c = make({ kind: 'count' });
    for (let i = 0; i < 150; i++) call(c.b, c.clock);
    assert.equal(c.b.stats().windowCalls, 100);
  });

  it('time: 30 s in 10 buckets, judged from 5 calls at 50%', () => {
    const { b, clock } = make({ kind: 'time' });
    call(b, clock, { failure: true });
    clock.advance(2_999);
    for (let i = 0; i < 3; i++) call(b, clock, { failure: true });
    assert.equal(b.state, 'closed', '4 calls');
    clock.advance(27_001); // 30 s after the first failure: its bucket has left
    call(b, clock, { failure: true });
    assert.equal(b.stats().windowCalls, 4);
    assert.equal(b.state, 'closed');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open');
  });

  it('a failureCount or slow-call rule does not also judge the failure rate unless asked', () => {
    const counted = make({ kind: 'time', failureCount: 10, minimumCalls: 1 });
    for (let i = 0; i < 9; i++) call(counted.b, counted.clock, { failure: true });
    assert.equal(counted.b.state, 'closed');
    const slowOnly = make({ kind: 'count', windowSize: 4, minimumCalls: 4, slowCallDuration: 100 });
    for (let i = 0; i < 3; i++) call(slowOnly.b, slowOnly.clock, { failure: true, slow: true });
    call(slowOnly.b, slowOnly.clock, { failure: true });
    assert.equal(
      slowOnly.b.state,
      'closed',
      '3 of 4 slow (threshold 1 by default), 4 of 4 failed: not judged',
    );
  });
});

describe('trip rules: more bad options', () => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [
      { kind: 'count', window: 10, windowSize: 10 },
      'circuitBreaker: option "trip.window" must be absent when windowSize is given (window is its deprecated name), got 10',
    ],
    [
      { kind: 'count', window: 0 },
      'circuitBreaker: option "trip.window" must be an integer >= 1 and <= 1000000, got 0',
    ],
    [
      { kind: 'nope' },
      'circuitBreaker: option "trip.kind" must be one of "consecutive", "count", "time", "custom", got "nope"',
    ],
    [
      { kind: 'consecutive', windowMs: 5 },
      'circuitBreaker: option "trip.windowMs" must be one of the known options (kind, threshold), got 5',
    ],
    [{ kind: 'custom', predicate: 5 }, 'circuitBreaker: option "trip.predicate" must be a function, got 5'],
    [
      { kind: 'custom', predicate: () => false, slowCallDuration: -1 },
      'circuitBreaker: option "trip.slowCallDuration" must be a number >= 0, got -1',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: 0 },
      'circuitBreaker: option "trip.windowMs" must be a number >= 1, got 0',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: 10, buckets: 0 },
      'circuitBreaker: option "trip.buckets" must be an integer >= 1 and <= 1000, got 0',
    ],
    [
      { kind: 'custom', predicate: () => false, windowMs: 10, buckets: 2.5 },
      'circuitBreaker: option "trip.buckets" must be an integer >= 1 and <= 1000, got 2.5',
    ],
  ];
  for (const [trip, message] of cases)
    it(message.slice(14, 100), () => {
      assert.throws(() => circuitBreaker({ trip: trip as never }), { name: 'InvalidOptionError', message });
    });

  it('no trip option: 5 consecutive failures', () => {
    const clock = new TestClock();
    const b = circuitBreaker({ clock });
    for (let i = 0; i < 4; i++) call(b, clock, { failure: true });
    assert.equal(b.state, 'closed');
    call(b, clock, { failure: true });
    assert.equal(b.state, 'open');
  });
});

describe('trip rules: counts since the last close', () => {
  it('consecutive: stats count calls and failures since the last close; the snapshot says so', () => {
    const { b, clock } = make({ kind: 'consecutive', threshold: 3 });
    call(b, clock);
    call(b, clock, { failure: true });
    call(b, clock);
    assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures], [3, 1]);
    assert.deepEqual(b.toJSON().window, { kind: 'total', calls: 3, failures: 1, slowCalls: 0 });
  });

  it('custom without a window: failures and slow calls since the last close', () => {
    const { b, clock } = make({ kind: 'custom', slowCallDuration: 100, predicate: () => false });
    call(b, clock, { slow: true });
    call(b, clock, { failure: true });
    call(b, clock);
    assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures], [3, 1]);
    assert.equal(slowCalls(b), 1);
    assert.deepEqual(b.toJSON().window, { kind: 'total', calls: 3, failures: 1, slowCalls: 1 });
  });

  it('a snapshot of another kind is ignored by every rule', () => {
    const clock = new TestClock();
    const snap = (window: BreakerSnapshot['window']): BreakerSnapshot => ({
      version: 1,
      name: 'x',
      state: 'closed',
      savedAt: 0,
      openings: 0,
      consecutiveFailures: 0,
      totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
      window,
    });
    const total = { kind: 'total', calls: 5, failures: 5, slowCalls: 0 } as const;
    const count = { kind: 'count', outcomes: [1, 1, 1] } as const;
    for (const [trip, window] of [
      [{ kind: 'consecutive' }, count],
      [{ kind: 'custom', predicate: () => false }, count],
      [{ kind: 'count' }, total],
      [{ kind: 'count' }, { kind: 'count', outcomes: 'x' as never }],
      [{ kind: 'count' }, { kind: 'time', outcomes: [1, 1, 1] } as never],
    ] as Array<[CircuitBreakerOptions['trip'], BreakerSnapshot['window']]>) {
      const b = circuitBreaker({ clock, trip, initialState: snap(window) });
      assert.equal(b.stats().windowCalls, 0, JSON.stringify([trip, window]));
    }
  });
});

describe('trip rules: predicates and slow successes are always judged', () => {
  it('a count-window predicate can trip on a success', () => {
    const { b, clock } = make({ kind: 'custom', windowSize: 5, predicate: (c) => c.calls >= 3 });
    call(b, clock);
    call(b, clock);
    assert.equal(b.state, 'closed');
    call(b, clock);
    assert.equal(b.state, 'open');
  });

  it('a time-window predicate can trip on a success', () => {
    const { b, clock } = make({ kind: 'custom', windowMs: 1_000, predicate: (c) => c.calls >= 3 });
    call(b, clock);
    call(b, clock);
    call(b, clock);
    assert.equal(b.state, 'open');
  });

  it('time window: a slow success is judged', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 100_000,
      minimumCalls: 2,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
    });
    call(b, clock);
    call(b, clock);
    call(b, clock); // 0 of 3
    call(b, clock, { slow: true }); // 1 of 4
    assert.equal(b.state, 'closed');
    call(b, clock, { slow: true }); // 2 of 5
    call(b, clock, { slow: true }); // 3 of 6 = 50%: a slow success trips it
    assert.equal(b.state, 'open');
  });
});

describe('trip rules: windows after wrapping and restoring', () => {
  it('count window: the snapshot lists outcomes oldest first after the ring wrapped', () => {
    const { b, clock } = make({ kind: 'count', windowSize: 3, minimumCalls: 3, failureRateThreshold: 1 });
    call(b, clock, { failure: true });
    call(b, clock);
    call(b, clock);
    call(b, clock, { failure: true }); // the first failure left; the ring wrapped once
    assert.deepEqual(b.toJSON().window, { kind: 'count', outcomes: [0, 0, 1] });
  });

  it('count window: a restored full ring slides on from its oldest outcome', () => {
    const clock = new TestClock();
    const trip = { kind: 'count', windowSize: 3, minimumCalls: 3, failureRateThreshold: 1 } as const;
    const b = circuitBreaker({
      clock,
      trip,
      initialState: {
        version: 1,
        name: 'x',
        state: 'closed',
        savedAt: 0,
        openings: 0,
        consecutiveFailures: 0,
        totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
        window: { kind: 'count', outcomes: [1, 0, 0] },
      },
    });
    call(b, clock); // the restored failure (the oldest) leaves
    assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures], [3, 0]);
    call(b, clock, { failure: true });
    call(b, clock, { failure: true });
    assert.deepEqual(b.toJSON().window, { kind: 'count', outcomes: [0, 1, 1] });
  });

  it('time window: slow counts survive a snapshot round trip and leave with their bucket', () => {
    const trip = {
      kind: 'time',
      windowMs: 1_000,
      buckets: 4,
      minimumCalls: 100,
      slowCallDuration: 100,
    } as const;
    const { b, clock } = make(trip);
    call(b, clock, { slow: true, failure: true });
    clock.advance(250);
    call(b, clock, { slow: true });
    call(b, clock);
    const snap = b.toJSON();
    const c = circuitBreaker({ clock, trip, initialState: snap });
    assert.deepEqual(c.toJSON().window, snap.window);
    assert.deepEqual([c.stats().windowCalls, c.stats().windowFailures, slowCalls(c)], [3, 1, 2]);
    const nonEmpty = (w: BreakerSnapshot['window']) =>
      (w as { buckets: number[][] }).buckets.filter((x) => x[0]! > 0).sort();
    assert.deepEqual(nonEmpty(snap.window), [
      [1, 1, 1],
      [2, 0, 1],
    ]);
    clock.advance(600); // the first bucket leaves, the second stays
    assert.deepEqual([c.stats().windowCalls, c.stats().windowFailures, slowCalls(c)], [2, 0, 1]);
    clock.advance(250);
    assert.deepEqual([c.stats().windowCalls, slowCalls(c)], [0, 0]);
  });

  it('time window: a slot reused by a later bucket starts with no slow calls', () => {
    const { b, clock } = make({
      kind: 'time',
      windowMs: 400,
      buckets: 4,
      minimumCalls: 100,
      slowCallDuration: 100,
    });
    call(b, clock, { slow: true }); // 200 ms, in one bucket
    for (let i = 0; i < 12; i++) {
      clock.advance(100); // every slot is reused three times
      call(b, clock);
      assert.ok(slowCalls(b) >= 0 && slowCalls(b) <= 1, `slow calls ${slowCalls(b)}`);
    }
    assert.equal(slowCalls(b), 0);
    assert.equal(b.stats().windowCalls, 4);
  });

  it('time window: a restored snapshot with a bucket that is not a list skips it', () => {
    const clock = new TestClock();
    const epoch = Math.floor(clock.now() / 250);
    const b = circuitBreaker({
      clock,
      trip: { kind: 'time', windowMs: 1_000, buckets: 4 },
      initialState: {
        version: 1,
        name: 'x',
        state: 'closed',
        savedAt: 0,
        openings: 0,
        consecutiveFailures: 0,
        totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
        window: {
          kind: 'time',
          bucketMs: 250,
          epoch,
          buckets: [null as never, [2, 1, 0], [1, 0, 0], [1, 1, 0]],
        },
      },
    });
    assert.deepEqual([b.stats().windowCalls, b.stats().windowFailures], [4, 2]);
  });
});

describe('trip rules: settings shared between breakers', () => {
  it('custom rules with equal settings keep their own predicates', () => {
    const a = make({ kind: 'custom', windowSize: 5, predicate: (c) => c.failures >= 1 });
    const b = make({ kind: 'custom', windowSize: 5, predicate: () => false });
    call(a.b, a.clock, { failure: true });
    call(b.b, b.clock, { failure: true });
    assert.deepEqual([a.b.state, b.b.state], ['open', 'closed']);
  });

  it('a time window without slow-call tracking snapshots no slow calls', () => {
    const { b, clock } = make({ kind: 'time', windowMs: 1_000, buckets: 4, minimumCalls: 100 });
    call(b, clock);
    clock.advance(250);
    call(b, clock);
    call(b, clock);
    const w = b.toJSON().window as { buckets: number[][] };
    assert.deepEqual(
      w.buckets.map((x) => x[2]),
      [0, 0, 0, 0],
    );
    assert.deepEqual(w.buckets.map((x) => x[0]).sort(), [0, 0, 1, 2]);
  });

  it('a restored time window counts the next call in the bucket it was saved in', () => {
    const trip = { kind: 'time', windowMs: 1_000, buckets: 4, minimumCalls: 100 } as const;
    const { b, clock } = make(trip);
    clock.advance(250);
    call(b, clock);
    const c = circuitBreaker({ clock, trip, initialState: b.toJSON() });
    call(c, clock); // same instant: the same bucket
    const saved = (b.toJSON().window as { buckets: number[][] }).buckets.map((x) => x[0]);
    const now = (c.toJSON().window as { buckets: number[][] }).buckets.map((x) => x[0]);
    assert.deepEqual(
      now,
      saved.map((n) => (n === 1 ? 2 : n)),
    );
  });
});
