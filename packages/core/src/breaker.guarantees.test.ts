/**
 * Guarantees of the breaker that its other tests did not pin, found by mutation testing
 * (`npm run mutation -- breaker`, docs/testing.md): each test here fails on at least one mutant
 * of breaker.ts that the rest of the suite let through.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { type BreakerStore, type CircuitBreakerOptions, circuitBreaker } from './index.js';
import { TestClock } from './test-clock.js';

function make(opts: CircuitBreakerOptions = {}) {
  const clock = new TestClock();
  const b = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, ...opts });
  return { clock, b };
}

const rejecting = (err: unknown) => () => Promise.reject(err);

describe('circuitBreaker: what the default isNeutral counts as the caller’s abort', () => {
  it('the signal’s own reason is neutral, whatever its name', async () => {
    const { b } = make();
    const reason = new Error('caller left');
    const ac = new AbortController();
    const p = b.execute(({ signal }) => {
      ac.abort(reason);
      return Promise.reject(signal.reason);
    }, ac.signal);
    await assert.rejects(p, /caller left/);
    assert.equal(b.stats().neutral, 1);
    assert.equal(b.state, 'closed');
  });

  it('another error named AbortError is neutral once the caller aborted', async () => {
    const { b } = make();
    const ac = new AbortController();
    const p = b.execute(() => {
      ac.abort(new Error('caller left'));
      return Promise.reject(new DOMException('fetch aborted', 'AbortError'));
    }, ac.signal);
    await assert.rejects(p, { name: 'AbortError' });
    assert.equal(b.stats().neutral, 1);
    assert.equal(b.state, 'closed');
  });

  it('an AbortError without the caller aborting is a failure', async () => {
    const { b } = make();
    const ac = new AbortController();
    await assert.rejects(b.execute(rejecting(new DOMException('x', 'AbortError')), ac.signal));
    assert.equal(b.stats().neutral, 0);
    assert.equal(b.state, 'open');
  });

  it('any other error after the caller aborted is a failure', async () => {
    const { b } = make();
    const ac = new AbortController();
    const p = b.execute(() => {
      ac.abort();
      return Promise.reject(new Error('server said no'));
    }, ac.signal);
    await assert.rejects(p, /server said no/);
    assert.equal(b.stats().neutral, 0);
    assert.equal(b.state, 'open');
  });

  it('a thrown function named AbortError is not an abort error; a thrown null still reaches isFailure', async () => {
    function AbortError() {}
    const { b } = make();
    const ac = new AbortController();
    const p = b.execute(() => {
      ac.abort();
      return Promise.reject(AbortError);
    }, ac.signal);
    await assert.rejects(p);
    assert.equal(b.stats().neutral, 0);
    assert.equal(b.state, 'open');

    const lenient = make({ isFailure: () => false }).b;
    const ac2 = new AbortController();
    const q = lenient.execute(() => {
      ac2.abort();
      return Promise.reject(null);
    }, ac2.signal);
    await assert.rejects(q, (e) => e === null);
    assert.deepEqual(
      [lenient.stats().successes, lenient.stats().failures, lenient.stats().neutral],
      [1, 0, 0],
    );
  });
});

describe('circuitBreaker: shared settings are shared only when equal', () => {
  it('a result classifier or a neutral classifier is never shared with a breaker without one', async () => {
    const clock = new TestClock();
    const base = { clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 4321 } as const;
    const plain = circuitBreaker(base);
    const byResult = circuitBreaker({ ...base, isResultFailure: (r) => r === 'bad' });
    const neutralAll = circuitBreaker({ ...base, isNeutral: () => true });
    const plainAfter = circuitBreaker(base);
    await plain.execute(() => 'bad');
    assert.equal(plain.state, 'closed', 'no result classifier');
    await byResult.execute(() => 'bad');
    assert.equal(byResult.state, 'open', 'its own result classifier');
    await assert.rejects(neutralAll.execute(rejecting(new Error('x'))));
    assert.equal(neutralAll.state, 'closed', 'its own neutral classifier');
    await assert.rejects(plainAfter.execute(rejecting(new Error('x'))));
    assert.equal(plainAfter.state, 'open', 'no neutral classifier');
  });

  it('breakers with different open-duration backoffs keep their own', () => {
    const clock = new TestClock();
    const durations = [1000, 2000].map((b) =>
      circuitBreaker({ clock, openDuration: { base: b, multiplier: 3 } }).openDurationMs(),
    );
    assert.deepEqual(durations, [1000, 2000]);
  });
});

describe('circuitBreaker: a store’s awaitProbe is asked only after an open period', () => {
  it('an isolated breaker rejects without waiting on the store', async () => {
    let asked = 0;
    const store = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => false,
        awaitProbe: () => {
          asked++;
          return Promise.resolve();
        },
        detach: () => {},
      }),
    };
    const { b } = make({ name: 'iso', store });
    b.isolate();
    for (let i = 0; i < 3; i++)
      await assert.rejects(
        b.execute(() => 1),
        { name: 'CircuitOpenError' },
      );
    assert.equal(asked, 0);
    assert.equal(b.stats().rejections, 3);
  });
});

/** A store whose first read is still on its way until `synced()` is called. */
function syncingStore() {
  let synced!: () => void;
  const first = new Promise<void>((resolve) => {
    synced = resolve;
  });
  let done = false;
  const store: BreakerStore = {
    attach: () => ({
      onTransition: () => {},
      untilSynced: () => (done ? undefined : first),
      detach: () => {},
    }),
  };
  return {
    store,
    synced: () => {
      done = true;
      synced();
    },
  };
}

describe('circuitBreaker: the signal passed to execute()', () => {
  const notSignals = [{ aborted: 0, addEventListener() {} }, { aborted: false }] as unknown as AbortSignal[];

  it('must be an AbortSignal: a falsy non-boolean aborted or a missing addEventListener is refused', async () => {
    for (const bad of notSignals) {
      let ran = false;
      await assert.rejects(
        make().b.execute(() => {
          ran = true;
        }, bad),
        { name: 'TypeError', message: 'execute: signal must be an AbortSignal' },
      );
      assert.equal(ran, false);
    }
  });

  it('is checked before waiting for the store’s first read', async () => {
    for (const bad of notSignals) {
      const { store } = syncingStore();
      await assert.rejects(
        make({ name: 'syncing', store }).b.execute(() => 1, bad),
        {
          name: 'TypeError',
          message: 'execute: signal must be an AbortSignal',
        },
      );
    }
  });

  it('already aborted: rejects at once, without waiting for the store’s first read', async () => {
    const { store } = syncingStore();
    const { b } = make({ name: 'syncing', store });
    let outcome: unknown = 'pending';
    b.execute(() => 1, AbortSignal.abort(new Error('gone'))).catch((e: Error) => {
      outcome = e.message;
    });
    await nextTurn();
    assert.equal(outcome, 'gone');
  });

  it('no abort listener is left once the store’s first read arrived', async () => {
    const { store, synced } = syncingStore();
    const { b } = make({ name: 'syncing', store });
    const ac = new AbortController();
    const call = b.execute(() => 'ran', ac.signal);
    await Promise.resolve();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    synced();
    assert.equal(await call, 'ran');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});
