import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { breakerChannels, circuitBreaker } from './index.js';
import { TestClock } from './test-clock.js';

describe('diagnostics_channel', () => {
  it('publishes state, success, failure, rejected and neutral with the event payloads', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({ name: 'dc', clock, trip: { kind: 'consecutive', threshold: 1 } });
    const seen: Array<[string, unknown]> = [];
    const subs = Object.entries(breakerChannels).map(([k, name]) => {
      const fn = (m: unknown) => seen.push([k, { ...(m as object) }]);
      diagnosticsChannel.subscribe(name, fn);
      return () => diagnosticsChannel.unsubscribe(name, fn);
    });
    try {
      await b.execute(() => 1);
      const ac = new AbortController();
      const p = b.execute(
        ({ signal }) => new Promise((_, r) => signal.addEventListener('abort', () => r(signal.reason))),
        ac.signal,
      );
      ac.abort();
      await p.catch(() => {});
      const err = new Error('down');
      await b.execute(() => Promise.reject(err)).catch(() => {});
      await b.execute(() => 1).catch(() => {});
      const abortError = (seen[1]![1] as { error: unknown }).error;
      assert.deepEqual(seen, [
        ['success', { name: 'dc', duration: 0 }],
        ['neutral', { name: 'dc', error: abortError, duration: 0 }],
        ['failure', { name: 'dc', error: err, duration: 0 }],
        [
          'state',
          { name: 'dc', from: 'closed', to: 'open', reason: 'consecutive-failures', at: clock.now() },
        ],
        ['rejected', { name: 'dc', state: 'open', retryAfter: 30_000 }],
      ]);
    } finally {
      for (const u of subs) u();
    }
  });

  it('publishes nothing (and builds nothing) without subscribers', async () => {
    const b = circuitBreaker({ clock: new TestClock() });
    for (const name of Object.values(breakerChannels))
      assert.equal(diagnosticsChannel.hasSubscribers(name), false);
    await b.execute(() => 1);
    assert.equal(b.stats().successes, 1);
  });
});
