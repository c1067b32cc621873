import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { constantBackoff } from './backoff.js';
import { circuitBreaker } from './breaker.js';
import { bulkhead } from './bulkhead.js';
import { fallback } from './fallback.js';
import { rateLimiter } from './rate-limiter.js';
import { retry } from './retry.js';
import { TestClock } from './test-clock.js';
import { timeout } from './timeout.js';
import { wrap } from './wrap.js';

// A long-lived signal (a server's shutdown signal, say) shared by every call must not collect one
// abort listener per call: after each call settles, the signal has no listener left.
describe('no listener outlives its call on a shared AbortSignal', () => {
  const N = 100_000;

  it(`${N.toLocaleString('en')} calls through fallback(retry(bulkhead(breaker(timeout)))) add none`, async () => {
    const clock = new TestClock();
    const shared = new AbortController().signal;
    const policy = wrap(
      fallback({ value: 'fallback' }),
      retry({ maxAttempts: 2, backoff: constantBackoff(0), clock }),
      bulkhead({ maxConcurrent: 4, maxQueue: 8, clock }),
      circuitBreaker({ name: 'shared-signal', trip: { kind: 'consecutive', threshold: 1_000_000 }, clock }),
      timeout({ ms: 1_000, clock }),
    );
    let peak = 0;
    let signalsRead = 0;
    for (let i = 0; i < N; i++) {
      const failFirst = i % 10 === 0;
      const value = await policy.execute(({ signal, attempt }) => {
        // Reading the signal makes the timeout create its controller and link it to `shared`.
        if (signal.aborted) throw new Error('aborted early');
        signalsRead++;
        peak = Math.max(peak, getEventListeners(shared, 'abort').length);
        if (failFirst && attempt === 1) throw new Error('transient');
        return i;
      }, shared);
      assert.equal(value, i);
      const left = getEventListeners(shared, 'abort').length;
      if (left !== 0) assert.fail(`call ${i} left ${left} abort listener(s) on the shared signal`);
    }
    assert.ok(peak >= 1, 'the layers did listen to the shared signal while a call ran');
    assert.equal(signalsRead, N + N / 10);
    // The timeout's one shared timer may stay armed for the last deadline; it is unref'd and cleared
    // by the next call or when it fires with nothing left to expire.
    clock.advance(1_000);
    assert.equal(clock.pending, 0);
  });

  it('the same with a rate limiter that makes callers wait', async () => {
    const clock = new TestClock();
    const shared = new AbortController().signal;
    const limiter = rateLimiter({ rate: 1, per: 10, burst: 1, maxWaitMs: 100, clock });
    for (let i = 0; i < 10_000; i++) {
      const p = limiter.execute(() => i, shared);
      await clock.advanceAsync(10);
      assert.equal(await p, i);
      const left = getEventListeners(shared, 'abort').length;
      if (left !== 0) assert.fail(`call ${i} left ${left} abort listener(s)`);
    }
  });
});
