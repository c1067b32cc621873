/**
 * An outcome belongs to the period that admitted it: a call admitted before a reset, a manual
 * state or any transition settles after it without driving the new period, whichever path it took
 * (the lean closed-state path, the observed path with a listener, or the path with a signal).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CircuitBreaker, type CircuitBreakerOptions, circuitBreaker } from './index.js';
import { TestClock } from './test-clock.js';

type Watch = 'none' | 'listener' | 'signal' | 'slow-call rule';
const watches: Watch[] = ['none', 'listener', 'signal', 'slow-call rule'];

function setup(watch: Watch, opts: CircuitBreakerOptions = {}) {
  const clock = new TestClock();
  const b = circuitBreaker({
    clock,
    trip:
      watch === 'slow-call rule'
        ? { kind: 'custom', slowCallDuration: 1_000, predicate: (c) => c.consecutiveFailures >= 2 }
        : { kind: 'consecutive', threshold: 2 },
    ...opts,
  });
  const seen: string[] = [];
  if (watch === 'listener') b.on('failure', (e) => seen.push((e.error as Error).message));
  const signal = watch === 'signal' ? new AbortController().signal : undefined;
  return { b, clock, signal, seen };
}

/** Starts a call that hangs until `fail()` is called. */
function hang(b: CircuitBreaker, signal: AbortSignal | undefined) {
  let fail!: (e: Error) => void;
  const p = b.execute(
    () =>
      new Promise((_, reject) => {
        fail = reject;
      }),
    signal,
  );
  const settled = p.then(
    () => 'resolved',
    (e: Error) => e.message,
  );
  return {
    fail: (msg = 'stale') => {
      fail(new Error(msg));
      return settled;
    },
  };
}

const failOnce = (b: CircuitBreaker, signal: AbortSignal | undefined) =>
  b
    .execute(() => Promise.reject(new Error('fresh')), signal)
    .then(
      () => 'resolved',
      (e: Error) => e.message,
    );

const periodEnders: Array<[string, (b: CircuitBreaker) => void]> = [
  [
    'isolate(); reset()',
    (b) => {
      b.isolate();
      b.reset();
    },
  ],
  ['reset() while closed', (b) => b.reset()],
  [
    'close(); reset()',
    (b) => {
      b.close();
      b.reset();
    },
  ],
  [
    'metricsOnly(); reset()',
    (b) => {
      b.metricsOnly();
      b.reset();
    },
  ],
];

describe('circuitBreaker: an outcome belongs to the period that admitted it', () => {
  for (const watch of watches)
    for (const [label, end] of periodEnders)
      it(`${label}: a hung call failing afterwards does not count (${watch})`, async () => {
        const { b, signal, seen } = setup(watch);
        const call = hang(b, signal);
        end(b);
        assert.equal(await call.fail(), 'stale');
        assert.equal(b.stats().consecutiveFailures, 0, 'the stale failure is not in the new run');
        assert.equal(await failOnce(b, signal), 'fresh');
        assert.equal(b.state, 'closed', 'one fresh failure must not open consecutive(2)');
        assert.equal(b.stats().consecutiveFailures, 1);
        // Totals still count every settled call: they are since creation.
        assert.equal(b.stats().failures, 2);
        if (watch === 'listener') assert.deepEqual(seen, ['stale', 'fresh']);
      });

  for (const watch of watches)
    it(`a call admitted before the breaker opened does not count in the next closed period (${watch})`, async () => {
      const { b, clock, signal } = setup(watch, { openDuration: 100 });
      const call = hang(b, signal);
      assert.equal(await failOnce(b, signal), 'fresh');
      assert.equal(await failOnce(b, signal), 'fresh');
      assert.equal(b.state, 'open');
      clock.advance(100);
      assert.equal(await b.execute(() => 'ok', signal), 'ok'); // the probe closes it
      assert.equal(b.state, 'closed');
      assert.equal(await call.fail(), 'stale');
      assert.equal(await failOnce(b, signal), 'fresh');
      assert.equal(b.state, 'closed');
      assert.equal(b.stats().consecutiveFailures, 1);
    });

  it('a stale success does not clear the new period’s run of failures', async () => {
    const { b } = setup('none', { trip: { kind: 'consecutive', threshold: 3 } });
    let succeed!: () => void;
    const stale = b.execute(() => new Promise<void>((r) => (succeed = r)));
    b.reset();
    await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    succeed();
    await stale;
    await b.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    assert.equal(b.state, 'open', 'three fresh failures in a row open consecutive(3)');
  });

  it('a stale failure does not land in a count window after reset()', async () => {
    const { b } = setup('none', { trip: { kind: 'count', windowSize: 4, minimumCalls: 2 } });
    const call = hang(b, undefined);
    b.reset();
    await call.fail();
    assert.equal(b.stats().windowCalls, 0);
    assert.equal(await b.execute(() => 'ok'), 'ok');
    assert.equal(await failOnce(b, undefined), 'fresh');
    assert.equal(b.state, 'open', '1 of 2 = 50% opens');
    assert.equal(b.stats().windowFailures, 1);
  });

  for (const watch of watches)
    it(`a call whose fn resets the breaker before failing counts in neither period (${watch})`, async () => {
      const { b, signal } = setup(watch);
      await b
        .execute(() => {
          b.reset();
          return Promise.reject(new Error('during'));
        }, signal)
        .catch(() => {});
      await b
        .execute(() => {
          b.reset();
          throw new Error('sync');
        }, signal)
        .catch(() => {});
      assert.equal(b.stats().consecutiveFailures, 0);
      assert.equal(await failOnce(b, signal), 'fresh');
      assert.equal(b.state, 'closed');
    });
});
