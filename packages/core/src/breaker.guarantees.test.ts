/**
 * Guarantees of the breaker that its other tests did not pin, found by mutation testing
 * (`npm run mutation -- breaker`, docs/testing.md): each test here fails on at least one mutant
 * of breaker.ts that the rest of the suite let through.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { getEventListeners } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { isIdleBreaker } from './breaker.js';
import {
  type BreakerStore,
  breakerChannels,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  circuitBreaker,
} from './index.js';
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

describe('circuitBreaker: what a probe’s fn is given', () => {
  /** Open, the period over: the next admission is a probe. */
  function due(opts: CircuitBreakerOptions = {}) {
    const m = make({ openDuration: 10, ...opts });
    m.b.tryAcquire()!.failure();
    m.clock.advance(10);
    return m;
  }
  const seen = (into: AbortSignal[]) => (ctx: { signal: AbortSignal }) => {
    into.push(ctx.signal);
  };

  it('the caller’s signal, or a never-aborted one without it (direct probe)', async () => {
    const signals: AbortSignal[] = [];
    const ac = new AbortController();
    const a = due();
    await a.b.execute(seen(signals), ac.signal);
    assert.equal(a.b.state, 'closed');
    const b = due();
    await b.b.execute(seen(signals));
    assert.equal(signals[0], ac.signal);
    assert.equal(signals[1]!.aborted, false);
    assert.ok(signals[1] instanceof AbortSignal);
  });

  it('the same after waiting for the store’s probe permit', async () => {
    for (const ac of [new AbortController(), undefined]) {
      let allow = false;
      const store: BreakerStore = {
        attach: () => ({
          onTransition: () => {},
          requestProbe: () => allow,
          awaitProbe: () => {
            allow = true;
            return Promise.resolve();
          },
          detach: () => {},
        }),
      };
      const { b } = due({ name: 'permit', store });
      const signals: AbortSignal[] = [];
      await b.execute(seen(signals), ac?.signal);
      assert.equal(b.state, 'closed');
      if (ac) assert.equal(signals[0], ac.signal);
      else assert.ok(signals[0] instanceof AbortSignal && !signals[0].aborted);
    }
  });

  it('the same after waiting for a probe slot (waitForProbes)', async () => {
    for (const ac of [new AbortController(), undefined]) {
      const { b } = due({ halfOpen: { waitForProbes: true, successesToClose: 2 } });
      const first = b.tryAcquire()!;
      const signals: AbortSignal[] = [];
      const waiter = b.execute(seen(signals), ac?.signal);
      first.success();
      await waiter;
      assert.equal(b.state, 'closed');
      if (ac) assert.equal(signals[0], ac.signal);
      else assert.ok(signals[0] instanceof AbortSignal && !signals[0].aborted);
    }
  });
});

describe('circuitBreaker: rejections that must not wait', () => {
  it('waitForProbes: a call while open (period not over) is rejected at once', async () => {
    const { b } = make({ openDuration: 100, halfOpen: { waitForProbes: true } });
    b.tryAcquire()!.failure();
    let outcome = 'pending';
    b.execute(() => 1).catch((e: Error) => {
      outcome = e.name;
    });
    await nextTurn();
    assert.equal(outcome, 'CircuitOpenError');
  });

  it('a permit or a refused call of a breaker isolated from the start', () => {
    const { b } = make();
    b.isolate();
    assert.equal(b.tryAcquire(), undefined);
    assert.throws(() => b.acquire(), { name: 'CircuitOpenError' });
    assert.equal(b.stats().rejections, 2);
  });

  for (const how of ['execute', 'tryAcquire', 'acquire'] as const)
    it(`a probe refused by the store (${how}) leaves no pending wait for a later isolated call`, async () => {
      let awaited = 0;
      const store: BreakerStore = {
        attach: () => ({
          onTransition: () => {},
          requestProbe: () => false,
          awaitProbe: () => {
            awaited++;
            return Promise.resolve();
          },
          detach: () => {},
        }),
      };
      const { b, clock } = make({ name: 'refused', store, openDuration: 10 });
      b.tryAcquire()!.failure();
      clock.advance(10);
      if (how === 'execute')
        await assert.rejects(
          b.execute(() => 1),
          { name: 'CircuitOpenError' },
        );
      else if (how === 'tryAcquire') assert.equal(b.tryAcquire(), undefined);
      else assert.throws(() => b.acquire(), { name: 'CircuitOpenError' });
      const before = awaited;
      b.isolate();
      await assert.rejects(
        b.execute(() => 1),
        { name: 'CircuitOpenError' },
      );
      assert.equal(awaited, before, 'an isolated breaker does not wait for a probe permit');
    });

  it('a store whose awaitProbe throws: the call is rejected as open, not with the store’s error', async () => {
    const store: BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => false,
        awaitProbe: () => {
          throw new Error('redis down');
        },
        detach: () => {},
      }),
    };
    const { b, clock } = make({ name: 'broken', store, openDuration: 10 });
    b.tryAcquire()!.failure();
    clock.advance(10);
    await assert.rejects(
      b.execute(() => 1),
      { name: 'CircuitOpenError' },
    );
  });
});

describe('circuitBreaker: slow calls on the path without listeners', () => {
  it('a slow call is counted with no listener and no signal', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      clock,
      trip: { kind: 'count', windowSize: 10, minimumCalls: 10, slowCallDuration: 5 },
    });
    await b.execute(() => {
      clock.advance(6);
      return 1;
    });
    await b.execute(() => 1);
    assert.equal(b.stats().slowCalls, 1);
  });
});

describe('circuitBreaker: after waiting for the store’s probe permit', () => {
  it('another caller took the probe meanwhile: rejected at once without waitForProbes', async () => {
    let allow = false;
    let permitArrived!: () => void;
    const store: BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => allow,
        awaitProbe: () =>
          new Promise<void>((resolve) => {
            permitArrived = resolve;
          }),
        detach: () => {},
      }),
    };
    const { b, clock } = make({ name: 'raced', store, openDuration: 10 });
    b.tryAcquire()!.failure();
    clock.advance(10);
    let outcome = 'pending';
    b.execute(() => 'ran').then(
      (v) => {
        outcome = v;
      },
      (e: Error) => {
        outcome = e.name;
      },
    );
    await Promise.resolve();
    allow = true;
    const probe = b.tryAcquire();
    assert.ok(probe);
    assert.equal(b.state, 'half-open');
    permitArrived();
    await nextTurn();
    assert.equal(outcome, 'CircuitOpenError');
    probe.success();
  });
});

describe('circuitBreaker: classifiers on every path', () => {
  const signalled = () => new AbortController().signal;
  // lean: no signal, no listener; run: with a signal; watched: with a listener.
  const paths = ['lean', 'run', 'watched'] as const;
  const on = (path: (typeof paths)[number], opts: CircuitBreakerOptions) => {
    const m = make(opts);
    if (path === 'watched') m.b.on('success', () => {});
    const signal = path === 'run' ? signalled() : undefined;
    return { ...m, run: <T>(fn: () => T | Promise<T>) => m.b.execute(fn, signal) };
  };

  for (const path of paths) {
    it(`isResultFailure counts a failed value (${path})`, async () => {
      const { b, run } = on(path, { isResultFailure: (r) => r === 'bad' });
      assert.equal(await run(() => 'good'), 'good');
      assert.equal(b.state, 'closed');
      assert.equal(await run(() => 'bad'), 'bad');
      assert.equal(b.state, 'open');
    });

    it(`classifiers answering a truthy non-true value do not classify (${path})`, async () => {
      const truthy = () => 'yes' as unknown as boolean;
      const { b, run } = on(path, { isResultFailure: truthy, isFailure: truthy, isNeutral: truthy });
      await run(() => 1);
      await assert.rejects(run(rejecting(new Error('x'))));
      assert.deepEqual([b.stats().successes, b.stats().failures, b.stats().neutral], [2, 0, 0]);
      assert.equal(b.state, 'closed');
    });

    it(`a throwing classifier counts the call as a failure (${path})`, async () => {
      const throwing = () => {
        throw new Error('classifier bug');
      };
      const byResult = on(path, { isResultFailure: throwing });
      assert.equal(await byResult.run(() => 1), 1);
      assert.equal(byResult.b.state, 'open');
      const byError = on(path, { isFailure: throwing });
      await assert.rejects(byError.run(rejecting(new Error('x'))), /^Error: x$/);
      assert.equal(byError.b.state, 'open');
      const byNeutral = on(path, { isNeutral: throwing });
      await assert.rejects(byNeutral.run(rejecting(new Error('x'))), /^Error: x$/);
      assert.equal(byNeutral.b.state, 'open');
    });
  }

  it('isFailure is not asked about a neutral error', async () => {
    let asked = 0;
    const { b } = make({
      isNeutral: () => true,
      isFailure: () => {
        asked++;
        return true;
      },
    });
    await assert.rejects(b.execute(rejecting(new Error('x'))));
    assert.equal(asked, 0);
    assert.equal(b.stats().neutral, 1);
  });
});

describe('circuitBreaker: waiters and the half-open deadline', () => {
  it('an aborted waiter’s listener is gone after the abort', async () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { waitForProbes: true } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const probe = b.tryAcquire()!;
    const ac = new AbortController();
    const waiter = b.execute(() => 1, ac.signal);
    await Promise.resolve();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('gave up'));
    await assert.rejects(waiter, /gave up/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    probe.success();
  });

  it('a call rejected while the probe runs keeps the half-open deadline', async () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { deadlineMs: 100 } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.equal(b.state, 'half-open');
    await assert.rejects(
      b.execute(() => 1),
      { name: 'CircuitOpenError' },
    );
    assert.throws(() => b.acquire(), { name: 'CircuitOpenError' });
    await assert.rejects(
      b.execute(() => 1, new AbortController().signal),
      { name: 'CircuitOpenError' },
    );
    clock.advance(100);
    assert.equal(b.state, 'open', 'the deadline reopened it');
    probe.success();
  });
});

describe('circuitBreaker: events and diagnostics_channel carry the same payloads', () => {
  for (const via of ['listeners', 'channels'] as const)
    it(`every event with its duration, through ${via} only`, async () => {
      const { b, clock } = make({ name: 'ev', openDuration: 1000 });
      const seen: unknown[] = [];
      const undo: Array<() => void> = [];
      const kinds = {
        stateChange: 'state',
        success: 'success',
        failure: 'failure',
        rejected: 'rejected',
        neutral: 'neutral',
      } as const;
      for (const [event, channel] of Object.entries(kinds)) {
        const fn = (m: unknown) => seen.push([event, { ...(m as object) }]);
        if (via === 'listeners') undo.push(b.on(event as keyof typeof kinds, fn).dispose);
        else {
          const name = breakerChannels[channel];
          diagnosticsChannel.subscribe(name, fn);
          undo.push(() => diagnosticsChannel.unsubscribe(name, fn));
        }
      }
      try {
        await b.execute(() => {
          clock.advance(7);
          return 1;
        });
        const ac = new AbortController();
        await assert.rejects(
          b.execute(({ signal }) => {
            clock.advance(2);
            ac.abort();
            return Promise.reject(signal.reason);
          }, ac.signal),
        );
        const n = b.tryAcquire()!;
        clock.advance(4);
        n.neutral('gave up');
        const s = b.tryAcquire()!;
        clock.advance(1);
        s.success();
        const f = b.tryAcquire()!;
        clock.advance(5);
        f.failure('down');
        const at = clock.now();
        assert.equal(b.tryAcquire(), undefined);
        clock.advance(10);
        assert.throws(() => b.acquire(), { name: 'CircuitOpenError' });
        const abortError = (seen[1] as [string, { error: unknown }])[1].error;
        assert.deepEqual(seen, [
          ['success', { name: 'ev', duration: 7 }],
          ['neutral', { name: 'ev', error: abortError, duration: 2 }],
          ['neutral', { name: 'ev', error: 'gave up', duration: 4 }],
          ['success', { name: 'ev', duration: 1 }],
          ['failure', { name: 'ev', error: 'down', duration: 5 }],
          ['stateChange', { name: 'ev', from: 'closed', to: 'open', reason: 'consecutive-failures', at }],
          ['rejected', { name: 'ev', state: 'open', retryAfter: 1000 }],
          ['rejected', { name: 'ev', state: 'open', retryAfter: 990 }],
        ]);
      } finally {
        for (const u of undo) u();
      }
    });

  for (const via of ['listener', 'channel'] as const)
    it(`a neutral call's duration is measured when only neutral is watched (${via})`, async () => {
      const { b, clock } = make();
      const durations: number[] = [];
      const fn = (m: unknown) => durations.push((m as { duration: number }).duration);
      let undo = (): unknown => diagnosticsChannel.unsubscribe(breakerChannels.neutral, fn);
      if (via === 'listener') undo = b.on('neutral', fn).dispose;
      else diagnosticsChannel.subscribe(breakerChannels.neutral, fn);
      try {
        const ac = new AbortController();
        await assert.rejects(
          b.execute(({ signal }) => {
            clock.advance(3);
            ac.abort();
            return Promise.reject(signal.reason);
          }, ac.signal),
        );
        assert.deepEqual(durations, [3]);
      } finally {
        undo();
      }
    });

  it('a rejection in half-open (applied by a store) says retry now', () => {
    const { b } = make({ openDuration: 1000 });
    b.tryAcquire()!.failure();
    b.applyRemote({ state: 'half-open', reason: 'remote' });
    const probe = b.tryAcquire()!;
    const err = (() => {
      try {
        b.acquire();
      } catch (e) {
        return e as { retryAfter: unknown; state: unknown };
      }
    })();
    assert.deepEqual([err?.state, err?.retryAfter], ['half-open', 0]);
    probe.success();
  });
});

describe('circuitBreaker: the open period', () => {
  /** The open periods of `n` openings in a row (each probe fails). */
  function periods(openDuration: CircuitBreakerOptions['openDuration'], n: number): number[] {
    const { b, clock } = make({ openDuration });
    const out: number[] = [];
    b.tryAcquire()!.failure();
    for (let i = 0; i < n; i++) {
      out.push(b.nextAttemptAt! - clock.now());
      clock.advance(out.at(-1)!);
      b.tryAcquire()!.failure();
    }
    return out;
  }

  it('backoff grows by the multiplier up to max; the defaults are 2 and 300 s', () => {
    assert.deepEqual(periods({ base: 100, multiplier: 3, max: 1000 }, 4), [100, 300, 900, 1000]);
    assert.deepEqual(periods({ base: 100_000 }, 3), [100_000, 200_000, 300_000]);
  });

  it('jitter removes a random fraction of the period', () => {
    const random = Math.random;
    Math.random = () => 0.5;
    try {
      assert.deepEqual(periods({ base: 1000, jitter: 0.2 }, 2), [900, 1800]);
    } finally {
      Math.random = random;
    }
  });

  it('a remote open without openUntil uses the next backoff period and is not counted as an opening', () => {
    const { b, clock } = make({ name: 'r', openDuration: { base: 100, multiplier: 2 } });
    b.applyRemote({ state: 'open', reason: 'remote' });
    assert.equal(b.nextAttemptAt, clock.now() + 100);
    assert.equal(b.toJSON().openings, 0);
    b.applyRemote({ state: 'open', openUntil: Number.NaN, reason: 'remote' });
    assert.equal(b.nextAttemptAt, clock.now() + 100, 'a non-finite openUntil is ignored');
  });

  it('a remote restart of the open period moves the eager half-open timer', () => {
    const { b, clock } = make({ name: 'r', openDuration: 100, eagerHalfOpen: true });
    b.tryAcquire()!.failure();
    b.applyRemote({ state: 'open', openUntil: clock.now() + 300, reason: 'remote' });
    clock.advance(100);
    assert.equal(b.state, 'open', 'not at the old end');
    clock.advance(200);
    assert.equal(b.state, 'half-open', 'at the new end, without a call');
  });

  it('a remote update without a reason string says remote', () => {
    const { b } = make({ name: 'r' });
    const reasons: string[] = [];
    b.on('stateChange', (e) => reasons.push(e.reason));
    b.applyRemote({ state: 'isolated', reason: 42 as unknown as string });
    assert.deepEqual(reasons, ['remote']);
  });

  it('an eager breaker restored open half-opens at nextAttemptAt without a call', () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      clock,
      eagerHalfOpen: true,
      initialState: {
        version: 1,
        name: 'x',
        state: 'open',
        savedAt: clock.now(),
        nextAttemptAt: clock.now() + 50,
        openings: 1,
        consecutiveFailures: 0,
        totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
      },
    });
    clock.advance(50);
    assert.equal(b.state, 'half-open');
  });
});

describe('circuitBreaker: manual states and what they keep', () => {
  it('a manual state set twice is one transition', () => {
    const { b } = make();
    const changes: string[] = [];
    b.on('stateChange', (e) => changes.push(`${e.from}->${e.to}`));
    b.isolate();
    b.isolate();
    b.forceClose();
    b.forceClose();
    b.metricsOnly();
    b.metricsOnly();
    assert.deepEqual(changes, ['closed->isolated', 'isolated->disabled', 'disabled->metrics-only']);
  });

  it('isolating an open breaker keeps its openings and the failures that opened it', () => {
    const { b } = make();
    const cause = new Error('down');
    b.tryAcquire()!.failure(cause);
    b.isolate();
    assert.equal(b.toJSON().openings, 1);
    assert.equal(b.toJSON().openFailures, 1);
    const err = (() => {
      try {
        b.acquire();
      } catch (e) {
        return e as { failures?: number; cause?: unknown };
      }
    })();
    assert.equal(err?.failures, 1);
    assert.equal(err?.cause, cause);
  });

  it('reset() of a closed breaker forgets the last failure and restored openings', () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 5 } });
    b.tryAcquire()!.failure(new Error('old'));
    b.reset();
    b.isolate();
    const err = (() => {
      try {
        b.acquire();
      } catch (e) {
        return e as { cause?: unknown };
      }
    })();
    assert.equal(err?.cause, undefined);

    const clock = new TestClock();
    const restored = circuitBreaker({
      clock,
      openDuration: { base: 100 },
      initialState: {
        version: 1,
        name: 'x',
        state: 'closed',
        savedAt: clock.now(),
        openings: 3,
        openFailures: 4,
        consecutiveFailures: 0,
        totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
      },
    });
    assert.equal(restored.openDurationMs(), 800);
    restored.reset();
    assert.equal(restored.openDurationMs(), 100);
    assert.equal(restored.toJSON().openings, 0);
    assert.equal(restored.toJSON().openFailures, undefined);
  });

  it('metricsOnly without listeners: a would-be trip restarts the counts and the run of failures', () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 2 }, metricsOnly: true });
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    assert.equal(b.state, 'metrics-only');
    assert.equal(b.stats().consecutiveFailures, 0);
    const would: Array<{ reason: string; at: number }> = [];
    b.on('wouldOpen', (e) => would.push({ reason: e.reason, at: e.at }));
    b.tryAcquire()!.failure();
    assert.deepEqual(would, [], 'the run restarted after the first would-be trip');
  });

  it('deadlineMs: Infinity holds no timer in half-open', () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { deadlineMs: Number.POSITIVE_INFINITY } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.equal(b.state, 'half-open');
    assert.equal(clock.pending, 0);
    probe.success();
  });
});

describe('circuitBreaker: probes of an earlier half-open period', () => {
  it('a stale probe given back neutral does not free a slot of the new period', () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { deadlineMs: 50 } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const stale = b.tryAcquire()!;
    clock.advance(50); // the deadline reopens it
    assert.equal(b.state, 'open');
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.equal(b.state, 'half-open');
    stale.neutral();
    assert.equal(b.tryAcquire(), undefined, 'still one probe at a time');
    probe.success();
    assert.equal(b.state, 'closed');
  });
});

describe('circuitBreaker: what the store and the error are told', () => {
  it('slow outcomes are reported as such', async () => {
    const outcomes: string[] = [];
    const store: BreakerStore = {
      attach: () => ({ onTransition: () => {}, onOutcome: (o) => outcomes.push(o), detach: () => {} }),
    };
    const { b, clock } = make({
      name: 'slow',
      store,
      trip: { kind: 'count', windowSize: 10, minimumCalls: 10, slowCallDuration: 5 },
    });
    for (const [ms, failed] of [
      [5, false],
      [6, false],
      [5, true],
      [6, true],
    ] as const) {
      const p = b.tryAcquire()!;
      clock.advance(ms);
      if (failed) p.failure();
      else p.success();
    }
    assert.deepEqual(outcomes, ['success', 'slow-success', 'failure', 'slow-failure']);
    assert.equal(b.stats().slowCalls, 2, 'exactly slowCallDuration is not slow');
  });

  it('the failures that opened it: the run for consecutive, the window for a rate rule', () => {
    const failuresOf = (opts: CircuitBreakerOptions, fails: boolean[]) => {
      const { b } = make(opts);
      for (const f of fails) {
        const p = b.tryAcquire()!;
        if (f) p.failure();
        else p.success();
      }
      assert.equal(b.state, 'open');
      try {
        b.acquire();
      } catch (e) {
        return (e as { failures?: number }).failures;
      }
    };
    assert.equal(failuresOf({ trip: { kind: 'consecutive', threshold: 2 } }, [true, false, true, true]), 2);
    assert.equal(
      failuresOf({ trip: { kind: 'count', windowSize: 4, minimumCalls: 4, failureRateThreshold: 0.5 } }, [
        true,
        false,
        true,
        false,
      ]),
      2,
    );
  });
});

describe('circuitBreaker: windows restart where they must', () => {
  const rateRule = { kind: 'count', windowSize: 4, minimumCalls: 2, failureRateThreshold: 0.5 } as const;

  it('reset() of a closed breaker empties the window', () => {
    const { b } = make({ trip: rateRule });
    b.tryAcquire()!.failure();
    b.reset();
    assert.equal(b.stats().windowFailures, 0);
    b.tryAcquire()!.failure();
    assert.equal(b.state, 'closed', 'one call is below minimumCalls');
  });

  it('metricsOnly: a would-be trip empties the window', () => {
    const { b } = make({ trip: rateRule, metricsOnly: true });
    const would: string[] = [];
    b.on('wouldOpen', (e) => would.push(e.reason));
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    assert.equal(would.length, 1);
    assert.equal(b.stats().windowCalls, 0);
    b.tryAcquire()!.failure();
    assert.equal(would.length, 1, 'one call is below minimumCalls');
  });

  it('a remote open from half-open without openUntil uses the next backoff period', () => {
    const { b, clock } = make({ name: 'r', openDuration: { base: 100, multiplier: 2 } });
    b.tryAcquire()!.failure();
    clock.advance(100);
    const probe = b.tryAcquire()!;
    assert.equal(b.state, 'half-open');
    b.applyRemote({ state: 'open', reason: 'remote' });
    assert.equal(b.nextAttemptAt, clock.now() + 200);
    probe.success();
  });
});

describe('circuitBreaker: every option is validated with a message naming it', () => {
  const cases: Array<[unknown, string]> = [
    [null, 'circuitBreaker: option "options" must be an object, got null'],
    [5, 'circuitBreaker: option "options" must be an object, got 5'],
    [{ name: 5 }, 'circuitBreaker: option "name" must be a non-empty string, got 5'],
    [
      { openDuration: 'x' },
      'circuitBreaker: option "openDuration" must be a number >= 0 or { base, max, multiplier, jitter }, got "x"',
    ],
    [
      { openDuration: null },
      'circuitBreaker: option "openDuration" must be a number >= 0 or { base, max, multiplier, jitter }, got null',
    ],
    [
      { openDuration: [1] },
      'circuitBreaker: option "openDuration" must be a number >= 0 or { base, max, multiplier, jitter }, got [1]',
    ],
    [
      { openDuration: { base: 1, cap: 2 } },
      'circuitBreaker: option "openDuration.cap" must be one of the known options (base, max, multiplier, jitter), got 2',
    ],
    [
      { openDuration: { base: Number.POSITIVE_INFINITY } },
      'circuitBreaker: option "openDuration.base" must be a finite number >= 0, got Infinity',
    ],
    [
      { openDuration: { base: 1, multiplier: Number.POSITIVE_INFINITY } },
      'circuitBreaker: option "openDuration.multiplier" must be a finite number >= 1, got Infinity',
    ],
    [
      { openDuration: { base: 1, multiplier: 0.5 } },
      'circuitBreaker: option "openDuration.multiplier" must be a number >= 1, got 0.5',
    ],
    [
      { openDuration: { base: -1 } },
      'circuitBreaker: option "openDuration.base" must be a number >= 0, got -1',
    ],
    [{ openDuration: {} }, 'circuitBreaker: option "openDuration.base" must be a number >= 0, got undefined'],
    [
      { halfOpen: { probes: 1 } },
      'circuitBreaker: option "halfOpen.probes" must be one of the known options (maxProbes, successesToClose, failureRateThreshold, deadlineMs, waitForProbes), got 1',
    ],
    [{ halfOpen: 3 }, 'circuitBreaker: option "halfOpen" must be an object, got 3'],
    [
      { halfOpen: { successesToClose: 0 } },
      'circuitBreaker: option "halfOpen.successesToClose" must be an integer >= 1, got 0',
    ],
    [
      { halfOpen: { successesToClose: 1.5 } },
      'circuitBreaker: option "halfOpen.successesToClose" must be an integer >= 1, got 1.5',
    ],
    [
      { halfOpen: { maxProbes: 1.5 } },
      'circuitBreaker: option "halfOpen.maxProbes" must be an integer >= 1, got 1.5',
    ],
    [
      { halfOpen: { failureRateThreshold: 0 } },
      'circuitBreaker: option "halfOpen.failureRateThreshold" must be a number > 0 and <= 1, got 0',
    ],
    [
      { halfOpen: { failureRateThreshold: 1.5 } },
      'circuitBreaker: option "halfOpen.failureRateThreshold" must be a number > 0 and <= 1, got 1.5',
    ],
    [
      { halfOpen: { waitForProbes: 1 } },
      'circuitBreaker: option "halfOpen.waitForProbes" must be true or false, got 1',
    ],
    [{ isResultFailure: 1 }, 'circuitBreaker: option "isResultFailure" must be a function, got 1'],
    [{ isNeutral: 1 }, 'circuitBreaker: option "isNeutral" must be a function, got 1'],
    [
      { isFailure: [Error, 1] },
      'circuitBreaker: option "isFailure" must be a function or an array of error classes, got [class Error, 1]',
    ],
    [
      { name: 's', store: { attach: () => null } },
      'circuitBreaker: option "store" must be a BreakerStore whose attach() returns a StoreSession, got {attach: a function}',
    ],
    [
      { name: 's', store: { attach: () => ({}) } },
      'circuitBreaker: option "store" must be a BreakerStore whose attach() returns a StoreSession, got {attach: a function}',
    ],
    [
      { name: 's', store: null },
      'circuitBreaker: option "store" must be a BreakerStore with attach(), got null',
    ],
    [{ initialState: 5 }, 'circuitBreaker: option "initialState" must be an object, got 5'],
    [
      { initialState: { version: 1, state: 'closed', totals: 5 } },
      'circuitBreaker: option "initialState.totals" must be an object, got 5',
    ],
    [
      { initialState: { version: 1, state: 'closed', window: 5 } },
      'circuitBreaker: option "initialState.window" must be an object, got 5',
    ],
    [
      { initialState: { version: 1, state: 'closed', openFailures: -1 } },
      'circuitBreaker: option "initialState.openFailures" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'closed', openings: 1.5 } },
      'circuitBreaker: option "initialState.openings" must be an integer >= 0, got 1.5',
    ],
    [
      { initialState: { version: 1, state: 'closed', totals: { successes: -1 } } },
      'circuitBreaker: option "initialState.totals.successes" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'closed', totals: { failures: -1 } } },
      'circuitBreaker: option "initialState.totals.failures" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'closed', totals: { rejections: -1 } } },
      'circuitBreaker: option "initialState.totals.rejections" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'closed', totals: { neutral: -1 } } },
      'circuitBreaker: option "initialState.totals.neutral" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'closed', totals: { slowCalls: -1 } } },
      'circuitBreaker: option "initialState.totals.slowCalls" must be an integer >= 0, got -1',
    ],
    [
      { initialState: { version: 1, state: 'open', nextAttemptAt: 'x' } },
      'circuitBreaker: option "initialState.nextAttemptAt" must be a finite number, got "x"',
    ],
  ];
  for (const [options, message] of cases)
    it(message.slice(15, 100), () => {
      assert.throws(() => circuitBreaker(options as CircuitBreakerOptions), {
        name: 'InvalidOptionError',
        message,
      });
    });

  it('the default backoff cap is 300 s, or base when base is larger', () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: { base: 400_000 },
    });
    b.tryAcquire()!.failure();
    clock.advance(400_000);
    b.tryAcquire()!.failure();
    assert.equal(b.nextAttemptAt! - clock.now(), 400_000);
  });
});

describe('circuitBreaker: snapshots', () => {
  const snap = (over: Record<string, unknown>) =>
    ({
      version: 1,
      name: 'x',
      savedAt: 0,
      openings: 0,
      consecutiveFailures: 0,
      totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
      ...over,
    }) as never;

  it('what a snapshot without optional fields restores to', () => {
    const clock = new TestClock();
    const closed = circuitBreaker({ clock, initialState: { version: 1, state: 'closed' } as never });
    assert.deepEqual(closed.toJSON(), {
      version: 1,
      name: 'default',
      state: 'closed',
      savedAt: clock.now(),
      openings: 0,
      consecutiveFailures: 0,
      totals: { successes: 0, failures: 0, rejections: 0, neutral: 0, slowCalls: 0 },
      window: { kind: 'total', calls: 0, failures: 0, slowCalls: 0 },
    });
    const half = circuitBreaker({ clock, initialState: snap({ state: 'half-open' }) });
    assert.equal(half.stats().openedAt, clock.now());
    const halfAt = circuitBreaker({ clock, initialState: snap({ state: 'half-open', openedAt: 5 }) });
    assert.equal(halfAt.stats().openedAt, 5);
    const open = circuitBreaker({
      clock,
      initialState: snap({ state: 'open', nextAttemptAt: clock.now() + 9, openedAt: null }),
    });
    assert.equal(open.stats().openedAt, clock.now());
    const openInf = circuitBreaker({
      clock,
      initialState: snap({
        state: 'open',
        nextAttemptAt: clock.now() + 9,
        openedAt: Number.POSITIVE_INFINITY,
      }),
    });
    assert.equal(openInf.stats().openedAt, clock.now(), 'a non-finite openedAt is replaced by now');
    assert.equal(open.stats().nextAttemptAt, clock.now() + 9);
    const openAt = circuitBreaker({
      clock,
      initialState: snap({ state: 'open', nextAttemptAt: clock.now() + 9, openedAt: 7 }),
    });
    assert.equal(openAt.stats().openedAt, 7);
  });

  it('openedAt is reported in half-open and open only; nextAttemptAt in open only', () => {
    const { b, clock } = make({ openDuration: 10 });
    const keys = () => [
      Object.hasOwn(b.stats(), 'openedAt'),
      Object.hasOwn(b.stats(), 'nextAttemptAt'),
      Object.hasOwn(b.toJSON(), 'openedAt'),
      Object.hasOwn(b.toJSON(), 'nextAttemptAt'),
    ];
    assert.deepEqual(keys(), [false, false, false, false]);
    b.tryAcquire()!.failure();
    const openedAt = clock.now();
    assert.deepEqual(keys(), [true, true, true, true]);
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.deepEqual(keys(), [true, false, true, false]);
    assert.equal(b.stats().openedAt, openedAt);
    assert.equal(b.toJSON().openedAt, openedAt);
    probe.success();
    assert.deepEqual(keys(), [false, false, false, false]);
  });
});

describe('circuitBreaker: dispose', () => {
  it('detaches once (a throwing detach is swallowed) and publishes nothing after', () => {
    const log: string[] = [];
    const store: BreakerStore = {
      attach: () => ({
        onTransition: (e) => log.push(`${e.from}->${e.to}`),
        detach: () => {
          log.push('detach');
          throw new Error('already gone');
        },
      }),
    };
    const { b } = make({ name: 'd', store });
    b.dispose();
    b.dispose();
    b.tryAcquire()!.failure();
    assert.equal(b.state, 'open');
    assert.deepEqual(log, ['detach']);
  });
});

describe('circuitBreaker: the small surface', () => {
  it('kind, snapshot(), Symbol.dispose, and type errors for a non-function', async () => {
    const log: string[] = [];
    const store: BreakerStore = {
      attach: () => ({ onTransition: () => {}, detach: () => log.push('detach') }),
    };
    const { b, clock } = make({ name: 'surface', store });
    assert.equal(b.kind, 'breaker');
    assert.deepEqual(b.snapshot(), b.toJSON());
    assert.equal(b.snapshot().savedAt, clock.now());
    await assert.rejects(b.execute(5 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
    assert.throws(() => b.wrap(5 as never), { name: 'TypeError', message: 'wrap: fn must be a function' });
    b[Symbol.dispose]();
    assert.deepEqual(log, ['detach']);
  });

  it('idle for the registry: closed with nothing in flight', () => {
    const { b } = make();
    assert.equal(isIdleBreaker(b), true);
    const p = b.tryAcquire()!;
    assert.equal(isIdleBreaker(b), false, 'a call in flight');
    p.success();
    assert.equal(isIdleBreaker(b), true);
    b.forceClose();
    assert.equal(isIdleBreaker(b), false, 'forced closed is not closed');
    b.reset();
    b.tryAcquire()!.failure();
    assert.equal(isIdleBreaker(b), false, 'open');
    const foreign = { state: 'closed' } as unknown as CircuitBreaker;
    assert.equal(isIdleBreaker(foreign), true);
    assert.equal(isIdleBreaker({ state: 'open' } as unknown as CircuitBreaker), false);
  });
});

describe('circuitBreaker: its timers', () => {
  it('lazy: the timer armed by a rejection is unref’d and over at the period’s end (tryAcquire gets the probe)', () => {
    const { b, clock } = make({ openDuration: 100 });
    b.tryAcquire()!.failure();
    clock.advance(40);
    assert.equal(b.tryAcquire(), undefined);
    assert.equal(clock.pending, 1);
    assert.equal(clock.refed, 0);
    clock.advance(59);
    assert.equal(b.tryAcquire(), undefined);
    clock.advance(1);
    assert.ok(b.tryAcquire(), 'the probe, by a permit');
    assert.equal(b.state, 'half-open');
  });

  it('the half-open deadline timer is unref’d, and so is its re-arm', () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { deadlineMs: 3_000_000_000 } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.equal(clock.refed, 0);
    clock.advance(2_147_483_647);
    assert.equal(b.state, 'half-open', 'the capped timer fired early and re-armed');
    assert.equal(clock.pending, 1);
    assert.equal(clock.refed, 0);
    probe.success();
  });

  it('eager: a store refusing the probe when the timer fires keeps it open; the next permit asks again', () => {
    let allow = false;
    let asked = 0;
    const store: BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => {
          asked++;
          return allow;
        },
        detach: () => {},
      }),
    };
    const { b, clock } = make({ name: 'eager', store, openDuration: 100, eagerHalfOpen: true });
    b.tryAcquire()!.failure();
    clock.advance(100);
    assert.equal(asked, 1);
    assert.equal(b.state, 'open');
    allow = true;
    assert.ok(b.tryAcquire(), 'the probe, by a permit');
    assert.equal(b.state, 'half-open');
  });
});

describe('circuitBreaker: stats() counts', () => {
  it('calls are successes + failures + neutral; a neutral call leaves flight', () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 9 } });
    b.tryAcquire()!.success();
    b.tryAcquire()!.failure();
    b.tryAcquire()!.failure();
    const n = b.tryAcquire()!;
    assert.equal(b.stats().inFlight, 1);
    n.neutral();
    const s = b.stats();
    assert.deepEqual([s.calls, s.successes, s.failures, s.neutral, s.inFlight], [4, 1, 2, 1, 0]);
  });
});

describe('circuitBreaker: permits, getters and odd stores', () => {
  it('a permit is settled only once reported', () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 9 } });
    for (const report of ['success', 'failure', 'neutral'] as const) {
      const p = b.tryAcquire()!;
      assert.equal(p.settled, false);
      p[report]();
      assert.equal(p.settled, true);
    }
  });

  it('nextAttemptAt only while open; protect runs methods through the breaker', async () => {
    const { b, clock } = make({ openDuration: 10 });
    assert.equal(b.nextAttemptAt, undefined);
    const method = b.protect(async () => Promise.reject(new Error('down')), {
      kind: 'method',
      name: 'call',
    } as never) as () => Promise<unknown>;
    await assert.rejects(method(), /down/);
    assert.equal(b.state, 'open');
    assert.equal(b.nextAttemptAt, clock.now() + 10);
    clock.advance(10);
    const probe = b.tryAcquire()!;
    assert.equal(b.nextAttemptAt, undefined, 'half-open');
    probe.success();
  });

  it('a function is not a store, nor a session', () => {
    const attach = () => ({ onTransition: () => {}, detach: () => {} });
    assert.throws(() => circuitBreaker({ name: 'f', store: Object.assign(() => {}, { attach }) as never }), {
      message: 'circuitBreaker: option "store" must be a BreakerStore with attach(), got a function',
    });
    const fnSession = Object.assign(() => {}, { onTransition: () => {}, detach: () => {} });
    assert.throws(() => circuitBreaker({ name: 'f', store: { attach: () => fnSession as never } }), {
      name: 'InvalidOptionError',
    });
  });
});

describe('circuitBreaker: two different classifiers of one kind are never shared', () => {
  const base = { trip: { kind: 'consecutive', threshold: 1 }, openDuration: 5678 } as const;
  it('isFailure', async () => {
    const a = make({ ...base, isFailure: (e) => (e as Error).message === 'a' }).b;
    const b = make({ ...base, isFailure: (e) => (e as Error).message === 'b' }).b;
    await assert.rejects(b.execute(rejecting(new Error('b'))));
    assert.equal(b.state, 'open');
    await assert.rejects(a.execute(rejecting(new Error('b'))));
    assert.equal(a.state, 'closed');
  });
  it('isResultFailure', async () => {
    const a = make({ ...base, isResultFailure: (r) => r === 'a' }).b;
    const b = make({ ...base, isResultFailure: (r) => r === 'b' }).b;
    await b.execute(() => 'b');
    assert.equal(b.state, 'open');
    await a.execute(() => 'b');
    assert.equal(a.state, 'closed');
  });
  it('isNeutral', async () => {
    const a = make({ ...base, isNeutral: (e) => (e as Error).message === 'a' }).b;
    const b = make({ ...base, isNeutral: (e) => (e as Error).message === 'b' }).b;
    await assert.rejects(b.execute(rejecting(new Error('a'))));
    assert.equal(b.state, 'open');
    await assert.rejects(a.execute(rejecting(new Error('a'))));
    assert.equal(a.state, 'closed');
  });
});

describe('circuitBreaker: what the store sees of each transition', () => {
  it('reasons and manual flags, and openUntil only when opening', () => {
    const seen: string[] = [];
    const keys: boolean[] = [];
    const store: BreakerStore = {
      attach: () => ({
        onTransition: (e) => {
          seen.push(`${e.from}->${e.to}:${e.reason}:${e.manual}`);
          keys.push(Object.hasOwn(e, 'openUntil'));
        },
        detach: () => {},
      }),
    };
    const { b, clock } = make({
      name: 't',
      store,
      openDuration: 10,
      eagerHalfOpen: true,
      halfOpen: { deadlineMs: 50 },
    });
    b.tryAcquire()!.failure(); // closed -> open
    clock.advance(10); // eager: open -> half-open
    clock.advance(50); // deadline: half-open -> open
    clock.advance(20); // eager again
    b.tryAcquire()!.success(); // half-open -> closed
    b.isolate();
    b.forceClose();
    b.metricsOnly();
    b.reset();
    assert.deepEqual(seen, [
      'closed->open:consecutive-failures:false',
      'open->half-open:open-duration-elapsed:false',
      'half-open->open:half-open-deadline:false',
      'open->half-open:open-duration-elapsed:false',
      'half-open->closed:probe-succeeded:false',
      'closed->isolated:isolated:true',
      'isolated->disabled:forced-closed:true',
      'disabled->metrics-only:metrics-only:true',
      'metrics-only->closed:reset:true',
    ]);
    assert.deepEqual(keys, [true, false, true, false, false, false, false, false, false]);
  });

  it('forceClose() and metricsOnly() of an open breaker forget its openings and failures', () => {
    for (const manual of ['forceClose', 'metricsOnly'] as const) {
      const { b } = make({ openDuration: { base: 100 } });
      b.tryAcquire()!.failure(new Error('down'));
      b[manual]();
      assert.equal(b.toJSON().openings, 0);
      assert.equal(b.toJSON().openFailures, undefined);
      assert.equal(b.openDurationMs(), 100);
      b.isolate();
      assert.throws(
        () => b.acquire(),
        (e: { cause?: unknown }) => e.cause === undefined,
      );
    }
  });
});

describe('circuitBreaker: applyRemote', () => {
  it('refuses an unknown state by name', () => {
    const { b } = make();
    assert.throws(() => b.applyRemote({ state: 'ajar' as never, reason: 'x' }), {
      name: 'TypeError',
      message: 'applyRemote: unknown state ajar',
    });
    assert.throws(() => b.applyRemote(undefined as never), {
      name: 'TypeError',
      message: 'applyRemote: unknown state undefined',
    });
    assert.equal(b.state, 'closed');
  });

  it('open -> open without openUntil restarts with the next backoff period', () => {
    const { b, clock } = make({ name: 'r', openDuration: { base: 100, multiplier: 2 } });
    b.tryAcquire()!.failure();
    clock.advance(30);
    b.applyRemote({ state: 'open', reason: 'remote' });
    assert.equal(b.nextAttemptAt, clock.now() + 200);
  });
});

describe('circuitBreaker: no idle timers', () => {
  it('an eager breaker restored closed holds no timer', () => {
    const clock = new TestClock();
    circuitBreaker({ clock, eagerHalfOpen: true, initialState: { version: 1, state: 'closed' } as never });
    assert.equal(clock.pending, 0);
  });

  it('a waiter woken by the probe’s verdict leaves no abort listener', async () => {
    const { b, clock } = make({ openDuration: 10, halfOpen: { waitForProbes: true } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const probe = b.tryAcquire()!;
    const ac = new AbortController();
    const waiter = b.execute(() => 'ran', ac.signal);
    await Promise.resolve();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    probe.success();
    assert.equal(await waiter, 'ran');
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });
});

describe('circuitBreaker: listeners', () => {
  it('disposing one listener (twice) leaves the others hearing', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 9 } });
    const heard: string[] = [];
    const a = b.on('success', () => heard.push('a'));
    b.on('success', () => heard.push('b'));
    const c = b.on('failure', () => heard.push('c'));
    a.dispose();
    a.dispose();
    c[Symbol.dispose]();
    await b.execute(() => 1);
    assert.deepEqual(heard, ['b']);
  });
});

describe('circuitBreaker: after the store’s permit, with waitForProbes', () => {
  it('another caller took the probe meanwhile: the call waits for its verdict, then runs', async () => {
    let allow = false;
    let permitArrived!: () => void;
    const store: BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => allow,
        awaitProbe: () =>
          new Promise<void>((resolve) => {
            permitArrived = resolve;
          }),
        detach: () => {},
      }),
    };
    const { b, clock } = make({ name: 'raced', store, openDuration: 10, halfOpen: { waitForProbes: true } });
    b.tryAcquire()!.failure();
    clock.advance(10);
    const call = b.execute(() => `ran ${b.state}`);
    await Promise.resolve();
    allow = true;
    const probe = b.tryAcquire()!;
    assert.equal(b.state, 'half-open');
    permitArrived();
    await nextTurn();
    probe.success();
    assert.equal(await call, 'ran closed');
  });
});

describe('circuitBreaker: a failed probe, as the store sees it', () => {
  it('reopens automatically, not by hand', () => {
    const seen: string[] = [];
    const store: BreakerStore = {
      attach: () => ({ onTransition: (e) => seen.push(`${e.to}:${e.reason}:${e.manual}`), detach: () => {} }),
    };
    const { b, clock } = make({ name: 'p', store, openDuration: 10 });
    b.tryAcquire()!.failure();
    clock.advance(10);
    b.tryAcquire()!.failure();
    assert.deepEqual(seen, [
      'open:consecutive-failures:false',
      'half-open:open-duration-elapsed:false',
      'open:probe-failed:false',
    ]);
  });
});
