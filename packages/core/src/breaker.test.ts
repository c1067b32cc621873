import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import util from 'node:util';
import {
  type BreakerEvents,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  CircuitOpenError,
  circuitBreaker,
  isCircuitOpenError,
} from './index.js';
import { TestClock } from './test-clock.js';

const boom = (): never => {
  throw new Error('boom');
};
const ok = () => 'ok';

async function fail(b: CircuitBreaker, n = 1, err: unknown = new Error('boom')): Promise<void> {
  for (let i = 0; i < n; i++)
    await assert.rejects(
      b.execute(() => {
        throw err;
      }),
    );
}

async function succeed(b: CircuitBreaker, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal(await b.execute(ok), 'ok');
}

function make(opts: CircuitBreakerOptions = {}) {
  const clock = new TestClock();
  const b = circuitBreaker({ clock, ...opts });
  const changes: string[] = [];
  b.on('stateChange', (e) => changes.push(`${e.from}->${e.to}:${e.reason}`));
  return { clock, b, changes };
}

describe('circuitBreaker: consecutive rule and states', () => {
  it('opens after threshold consecutive failures, a success resets the run', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 3 } });
    await fail(b, 2);
    await succeed(b);
    await fail(b, 2);
    assert.equal(b.state, 'closed');
    await fail(b);
    assert.equal(b.state, 'open');
  });

  it('defaults to 5 consecutive failures and 30 s open', async () => {
    const { b, clock } = make();
    await fail(b, 4);
    assert.equal(b.state, 'closed');
    await fail(b);
    assert.equal(b.state, 'open');
    assert.equal(b.nextAttemptAt, clock.now() + 30_000);
  });

  it('rejects without calling fn while open, with retryAt/retryAfter/cause and the documented message', async () => {
    const { b, clock } = make({
      name: 'payments',
      trip: { kind: 'consecutive', threshold: 5 },
      openDuration: 8000,
    });
    const last = new Error('connection refused');
    await fail(b, 5, last);
    clock.advance(1000);
    let called = false;
    const err = await b
      .execute(() => {
        called = true;
      })
      .then(
        () => assert.fail('should reject'),
        (e: unknown) => e,
      );
    assert.equal(called, false);
    assert.ok(isCircuitOpenError(err));
    assert.equal(err.name, 'CircuitOpenError');
    assert.equal(err.code, 'ERR_CIRCUIT_OPEN');
    assert.equal(err.breakerName, 'payments');
    assert.equal(err.state, 'open');
    assert.equal(err.retryAt, 1_700_000_008_000);
    assert.equal(err.retryAfter, 7000);
    assert.equal(err.failures, 5);
    assert.equal(err.cause, last);
    assert.equal(
      err.message,
      'Circuit "payments" OPEN until 2023-11-14T22:13:28.000Z (5 failures, 7 s remaining) (last failure: Error: connection refused)',
    );
    assert.equal(b.stats().rejections, 1);
  });

  it('moves to half-open lazily on the first call after the open duration, holding no timer', async () => {
    const { b, clock, changes } = make({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1000 });
    await fail(b);
    assert.equal(clock.pending, 0);
    clock.advance(999);
    await assert.rejects(b.execute(ok), isCircuitOpenError);
    clock.advance(1);
    assert.equal(b.state, 'open', 'no transition without a call');
    await succeed(b);
    assert.equal(b.state, 'closed');
    assert.deepEqual(changes, [
      'closed->open:consecutive-failures',
      'open->half-open:open-duration-elapsed',
      'half-open->closed:probe-succeeded',
    ]);
  });

  it('a failed probe reopens for a new period', async () => {
    const { b, clock, changes } = make({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1000 });
    await fail(b);
    clock.advance(1000);
    await fail(b);
    assert.equal(b.state, 'open');
    assert.equal(b.nextAttemptAt, clock.now() + 1000);
    assert.equal(changes.at(-1), 'half-open->open:probe-failed');
  });

  it('eagerHalfOpen uses one unref-ed timer per open period', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 1000,
      eagerHalfOpen: true,
    });
    await fail(b);
    assert.equal(clock.pending, 1);
    clock.advance(1000);
    assert.equal(b.state, 'half-open');
    // the half-open deadline timer replaces the eager one
    assert.equal(clock.pending, 1);
    await succeed(b);
    assert.equal(b.state, 'closed');
    assert.equal(clock.pending, 0);
  });
});

describe('circuitBreaker: half-open probes', () => {
  it('admits exactly maxProbes of 10,000 concurrent calls', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
      halfOpen: { maxProbes: 3 },
    });
    await fail(b);
    clock.advance(100);
    let started = 0;
    const release: Array<() => void> = [];
    const calls = [];
    for (let i = 0; i < 10_000; i++)
      calls.push(
        b
          .execute(
            () =>
              new Promise<string>((r) => {
                started++;
                release.push(() => r('done'));
              }),
          )
          .then(
            () => 'ok',
            (e) => (isCircuitOpenError(e) ? 'rejected' : 'other'),
          ),
      );
    assert.equal(started, 3);
    assert.equal(b.state, 'half-open');
    for (const r of release) r();
    const results = await Promise.all(calls);
    assert.equal(results.filter((r) => r === 'ok').length, 3);
    assert.equal(results.filter((r) => r === 'rejected').length, 9_997);
    assert.equal(b.state, 'closed');
  });

  it('needs successesToClose successes; slots free up as probes settle', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
      halfOpen: { successesToClose: 3 },
    });
    await fail(b);
    clock.advance(100);
    await succeed(b, 2);
    assert.equal(b.state, 'half-open');
    await succeed(b);
    assert.equal(b.state, 'closed');
  });

  it('reopens when the half-open deadline passes with a probe that never settles', async () => {
    const { b, clock, changes } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
      halfOpen: { deadlineMs: 5000 },
    });
    await fail(b);
    clock.advance(100);
    void b.execute(() => new Promise(() => {}));
    assert.equal(b.state, 'half-open');
    clock.advance(5000);
    assert.equal(b.state, 'open');
    assert.equal(changes.at(-1), 'half-open->open:half-open-deadline');
    clock.advance(100);
    await succeed(b);
    assert.equal(b.state, 'closed');
  });

  it('waitForProbes: waiters run after the probe closes the breaker, and stop on abort', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
      halfOpen: { waitForProbes: true },
    });
    await fail(b);
    clock.advance(100);
    let release!: () => void;
    const probe = b.execute(() => new Promise<string>((r) => (release = () => r('probe'))));
    let ran = 0;
    const waiter = b.execute(() => {
      ran++;
      return 'waiter';
    });
    const ac = new AbortController();
    const aborted = b.execute(() => 'never', ac.signal);
    await Promise.resolve();
    assert.equal(ran, 0);
    ac.abort(new Error('caller gave up'));
    await assert.rejects(aborted, /caller gave up/);
    release();
    assert.equal(await probe, 'probe');
    assert.equal(await waiter, 'waiter');
    assert.equal(ran, 1);
  });

  it('waitForProbes: waiters are rejected when the probe fails', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
      halfOpen: { waitForProbes: true },
    });
    await fail(b);
    clock.advance(100);
    let reject!: (e: Error) => void;
    const probe = b.execute(() => new Promise<string>((_, r) => (reject = r)));
    const waiter = b.execute(ok);
    reject(new Error('still down'));
    await assert.rejects(probe, /still down/);
    await assert.rejects(waiter, isCircuitOpenError);
  });
});

describe('circuitBreaker: permits, wrap, classification', () => {
  it('tryAcquire returns undefined while open and a permit otherwise; each permit settles once', () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 2 } });
    const p = b.tryAcquire()!;
    p.failure(new Error('x'));
    p.failure(new Error('x'));
    assert.equal(p.settled, true);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().failures, 1);
    b.acquire().failure();
    assert.equal(b.state, 'open');
    assert.equal(b.tryAcquire(), undefined);
    assert.throws(() => b.acquire(), isCircuitOpenError);
    assert.equal(b.stats().rejections, 2);
  });

  it('a neutral permit gives the probe slot back', () => {
    const { b, clock } = make({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 10 });
    b.acquire().failure();
    clock.advance(10);
    const p = b.acquire();
    assert.equal(b.tryAcquire(), undefined);
    p.neutral();
    const q = b.tryAcquire();
    assert.ok(q);
    q.success();
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().neutral, 1);
  });

  it('wrap keeps the parameters', async () => {
    const { b } = make();
    const add = b.wrap((a: number, c: number) => a + c);
    assert.equal(await add(2, 3), 5);
  });

  it('isFailure as a predicate or classes; other errors are rethrown and count as successes', async () => {
    class Http500 extends Error {}
    const { b } = make({ trip: { kind: 'consecutive', threshold: 1 }, isFailure: [Http500] });
    await assert.rejects(
      b.execute(() => Promise.reject(new TypeError('bad input'))),
      TypeError,
    );
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().successes, 1);
    await assert.rejects(b.execute(() => Promise.reject(new Http500('down'))));
    assert.equal(b.state, 'open');
  });

  it('isResultFailure counts resolved values as failures but still returns them', async () => {
    const { b } = make({
      trip: { kind: 'consecutive', threshold: 2 },
      isResultFailure: (r) => (r as { status: number }).status >= 500,
    });
    assert.deepEqual(await b.execute(() => ({ status: 503 })), { status: 503 });
    assert.deepEqual(await b.execute(() => ({ status: 200 })), { status: 200 });
    await b.execute(() => ({ status: 500 }));
    await b.execute(() => ({ status: 502 }));
    assert.equal(b.state, 'open');
  });

  it("the caller's own abort is neutral by default", async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 1 } });
    const ac = new AbortController();
    const p = b.execute(
      ({ signal }) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
      ac.signal,
    );
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().neutral, 1);
    assert.equal(b.stats().failures, 0);
  });

  it('an already aborted signal rejects without running', async () => {
    const { b } = make();
    let ran = false;
    await assert.rejects(
      b.execute(
        () => {
          ran = true;
        },
        AbortSignal.abort(new Error('too late')),
      ),
      /too late/,
    );
    assert.equal(ran, false);
  });

  it('passes a shared never-aborting signal when none is given', async () => {
    const { b } = make();
    const seen: AbortSignal[] = [];
    await b.execute(({ signal }) => seen.push(signal));
    await b.execute(({ signal }) => seen.push(signal));
    assert.equal(seen[0], seen[1]);
    assert.equal(seen[0]!.aborted, false);
  });

  it('a synchronous throw in fn becomes a rejection and counts', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 1 } });
    await assert.rejects(b.execute(boom), /boom/);
    assert.equal(b.state, 'open');
  });
});

describe('circuitBreaker: events', () => {
  it('emits success, failure, rejected and neutral with durations', async () => {
    const { b, clock } = make({ name: 'svc', trip: { kind: 'consecutive', threshold: 1 } });
    const seen: Array<[keyof BreakerEvents, unknown]> = [];
    for (const ev of ['success', 'failure', 'rejected', 'neutral'] as const)
      b.on(ev, (e) => seen.push([ev, { ...e }]));
    await b.execute(async () => {
      clock.advance(7);
      return 1;
    });
    const err = new Error('x');
    await assert.rejects(
      b.execute(async () => {
        clock.advance(3);
        throw err;
      }),
    );
    await assert.rejects(b.execute(ok));
    assert.deepEqual(seen, [
      ['success', { name: 'svc', duration: 7 }],
      ['failure', { name: 'svc', error: err, duration: 3 }],
      ['rejected', { name: 'svc', state: 'open', retryAfter: 30_000 }],
    ]);
  });

  it('listeners are disposable', async () => {
    const { b } = make();
    let n = 0;
    const sub = b.on('success', () => n++);
    await succeed(b);
    sub.dispose();
    await succeed(b);
    assert.equal(n, 1);
  });

  it('after the last listener is disposed, calls stop reading the clock again (lean path)', async () => {
    const clock = new TestClock();
    let reads = 0;
    const counting = {
      now: () => {
        reads++;
        return clock.now();
      },
      setTimeout: clock.setTimeout.bind(clock),
      clearTimeout: clock.clearTimeout.bind(clock),
    };
    const b = circuitBreaker({ clock: counting });
    await b.execute(ok);
    const idle = reads;
    const subs = [b.on('success', () => {}), b.on('failure', () => {})];
    await b.execute(ok);
    assert.ok(reads > idle, 'a listener needs a duration, so the clock is read');
    subs[0]!.dispose();
    subs[0]!.dispose(); // twice is a no-op and must not drop the other listener's emitter
    let failures = 0;
    b.on('failure', () => failures++).dispose();
    await assert.rejects(b.execute(() => Promise.reject(new Error('x'))));
    assert.equal(failures, 0);
    subs[1]!.dispose();
    const before = reads;
    await b.execute(ok);
    await b.execute(ok);
    assert.equal(reads, before, 'no clock read per call once nobody listens');
  });
});

describe('circuitBreaker: manual states', () => {
  it('isolate() rejects everything with no retry time; reset() closes with clean counts', async () => {
    const { b, changes } = make({ name: 'inv' });
    b.isolate();
    const err = await b.execute(ok).catch((e: unknown) => e);
    assert.ok(isCircuitOpenError(err));
    assert.equal(err.state, 'isolated');
    assert.equal(err.retryAt, undefined);
    assert.equal(err.message, 'Circuit "inv" ISOLATED (isolated by an operator)');
    b.reset();
    await fail(b, 2);
    b.isolate();
    const err2 = await b.execute(ok).catch((e: unknown) => e);
    assert.match(
      (err2 as Error).message,
      /ISOLATED \(isolated by an operator\) \(last failure: Error: boom\)$/,
    );
    b.reset();
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().consecutiveFailures, 0);
    assert.deepEqual(changes, [
      'closed->isolated:isolated',
      'isolated->closed:reset',
      'closed->isolated:isolated',
      'isolated->closed:reset',
    ]);
  });

  it('forceClose() forces closed (disabled): admits everything and never opens', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 1 } });
    b.forceClose();
    await fail(b, 10);
    assert.equal(b.state, 'disabled');
    assert.equal(b.stats().failures, 10);
    await succeed(b);
  });

  it('metricsOnly() records and emits, never rejects, and reports wouldOpen', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 2 } });
    b.metricsOnly();
    const would: string[] = [];
    b.on('wouldOpen', (e) => would.push(e.reason));
    let failures = 0;
    b.on('failure', () => failures++);
    await fail(b, 5);
    await succeed(b);
    assert.equal(b.state, 'metrics-only');
    assert.equal(failures, 5);
    assert.deepEqual(would, ['consecutive-failures', 'consecutive-failures']);
  });

  it('close() is the deprecated alias of forceClose()', () => {
    const { b, changes } = make();
    b.close();
    assert.equal(b.state, 'disabled');
    assert.deepEqual(changes, ['closed->disabled:forced-closed']);
  });

  it('the metricsOnly option starts a dry run: never rejects, reports wouldOpen; reset() makes it real', async () => {
    const { b } = make({ trip: { kind: 'consecutive', threshold: 1 }, metricsOnly: true });
    const would: string[] = [];
    b.on('wouldOpen', (e) => would.push(e.reason));
    assert.equal(b.state, 'metrics-only');
    await fail(b, 2);
    assert.deepEqual(would, ['consecutive-failures', 'consecutive-failures']);
    b.reset();
    await fail(b);
    assert.equal(b.state, 'open');
  });

  it('the deprecated count-window name `window` still works', async () => {
    const { b } = make({ trip: { kind: 'count', window: 2, minimumCalls: 2 } });
    await succeed(b, 5);
    await fail(b);
    assert.equal(b.state, 'open', '1 of the last 2 = 50%');
    assert.equal(b.stats().windowCalls, 2);
  });

  it('reset() of an open breaker forgets the backoff', async () => {
    const { b, clock } = make({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: { base: 100 } });
    await fail(b);
    clock.advance(100);
    await fail(b);
    assert.equal(b.nextAttemptAt! - clock.now(), 200);
    b.reset();
    await fail(b);
    assert.equal(b.nextAttemptAt! - clock.now(), 100);
  });
});

describe('circuitBreaker: toJSON / initialState', () => {
  it('round-trips an open breaker, keeping its retry time and counts', async () => {
    const { b, clock } = make({ name: 'p', trip: { kind: 'consecutive', threshold: 2 }, openDuration: 5000 });
    await fail(b, 2);
    const snap = JSON.parse(JSON.stringify(b));
    assert.equal(snap.state, 'open');
    const c = circuitBreaker({ name: 'p', clock, initialState: snap });
    assert.equal(c.state, 'open');
    assert.equal(c.nextAttemptAt, b.nextAttemptAt);
    assert.deepEqual(c.stats(), b.stats());
    clock.advance(5000);
    await succeed(c);
    assert.equal(c.state, 'closed');
  });

  it('a half-open snapshot restores as open, with the next call admitted as a probe', async () => {
    const { b, clock } = make({ trip: { kind: 'consecutive', threshold: 1 }, openDuration: 5000 });
    await fail(b);
    clock.advance(5000);
    const p = b.acquire();
    assert.equal(b.state, 'half-open');
    const c = circuitBreaker({ clock, initialState: b.toJSON() });
    assert.equal(c.state, 'open');
    assert.equal(c.nextAttemptAt, clock.now());
    await succeed(c);
    assert.equal(c.state, 'closed');
    p.success();
  });

  it('restores the count window', () => {
    const { b, clock } = make({ trip: { kind: 'count', windowSize: 10, minimumCalls: 4 } });
    for (let i = 0; i < 3; i++) b.acquire().failure();
    const c = circuitBreaker({
      clock,
      trip: { kind: 'count', windowSize: 10, minimumCalls: 4 },
      initialState: b.toJSON(),
    });
    assert.equal(c.stats().windowFailures, 3);
    c.acquire().failure();
    assert.equal(c.state, 'open');
  });

  it('restores the time window, which then slides as usual', () => {
    const trip = { kind: 'time', windowMs: 1000, buckets: 4, minimumCalls: 4 } as const;
    const { b, clock } = make({ trip });
    for (let i = 0; i < 3; i++) b.acquire().failure();
    const c = circuitBreaker({ clock, trip, initialState: b.toJSON() });
    assert.equal(c.stats().windowFailures, 3);
    clock.advance(1000);
    assert.equal(c.stats().windowFailures, 0);
  });

  it('rejects a malformed snapshot with a precise message', () => {
    assert.throws(() => circuitBreaker({ initialState: { version: 2 } as never }), {
      message: 'circuitBreaker: option "initialState.version" must be 1, got 2',
    });
    assert.throws(
      () => circuitBreaker({ initialState: { version: 1, state: 'ajar' } as never }),
      /option "initialState.state" must be one of "closed", "disabled", "metrics-only", "half-open", "open", "isolated", got "ajar"/,
    );
    assert.throws(
      () => circuitBreaker({ initialState: { version: 1, state: 'open' } as never }),
      /option "initialState.nextAttemptAt" must be a finite number, got undefined/,
    );
    assert.throws(
      () =>
        circuitBreaker({ initialState: { version: 1, state: 'closed', consecutiveFailures: -1 } as never }),
      /"initialState.consecutiveFailures" must be an integer >= 0, got -1/,
    );
  });
});

describe('circuitBreaker: store hook', () => {
  function fakeStore(opts: { probe?: () => boolean } = {}) {
    const log: string[] = [];
    let handle: import('./index.js').BreakerHandle | undefined;
    const store: import('./index.js').BreakerStore = {
      attach(h) {
        handle = h;
        log.push(`attach:${h.name}:${h.state}`);
        return {
          onTransition: (e) =>
            log.push(`transition:${e.from}->${e.to}:${e.reason}:${e.manual}:${e.openUntil ?? '-'}`),
          onOutcome: (o) => log.push(`outcome:${o}`),
          requestProbe: () => {
            log.push('requestProbe');
            return opts.probe ? opts.probe() : true;
          },
          detach: () => log.push('detach'),
        };
      },
    };
    return { store, log, handle: () => handle! };
  }

  it('attaches, reports outcomes and local transitions, asks before probing, detaches', async () => {
    const { store, log } = fakeStore();
    const { b, clock } = make({
      name: 's',
      store,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
    });
    await succeed(b);
    await fail(b);
    clock.advance(100);
    await succeed(b);
    b.isolate();
    b.dispose();
    assert.deepEqual(log, [
      'attach:s:closed',
      'outcome:success',
      'outcome:failure',
      `transition:closed->open:consecutive-failures:false:${clock.now()}`,
      'requestProbe',
      'transition:open->half-open:open-duration-elapsed:false:-',
      'outcome:success',
      'transition:half-open->closed:probe-succeeded:false:-',
      'transition:closed->isolated:isolated:true:-',
      'detach',
    ]);
  });

  it('requestProbe() false keeps it open without a new period, and it asks again on the next call', async () => {
    let allow = false;
    const { store, log } = fakeStore({ probe: () => allow });
    const { b, clock } = make({
      name: 'stored',
      store,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
    });
    await fail(b);
    const until = b.nextAttemptAt;
    clock.advance(100);
    const err = await b.execute(ok).catch((e: unknown) => e);
    assert.ok(isCircuitOpenError(err));
    assert.equal(err.retryAfter, 0);
    assert.equal(b.state, 'open');
    assert.equal(b.nextAttemptAt, until);
    allow = true;
    await succeed(b);
    assert.equal(b.state, 'closed');
    assert.equal(log.filter((l) => l === 'requestProbe').length, 2);
  });

  it('awaitProbe(): the first call after the open period waits for the permit and becomes the probe', async () => {
    let allow = false;
    let grant!: () => void;
    const asked: string[] = [];
    const store: import('./index.js').BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => allow,
        awaitProbe: () => {
          asked.push('await');
          return new Promise<void>((resolve) => {
            grant = () => {
              allow = true;
              resolve();
            };
          });
        },
        detach: () => {},
      }),
    };
    const { b, clock } = make({
      name: 'stored',
      store,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
    });
    await fail(b);
    clock.advance(100);
    let ran = 0;
    const call = b.execute(() => ++ran);
    await Promise.resolve();
    assert.equal(ran, 0, 'waits for the store');
    assert.deepEqual(asked, ['await']);
    grant();
    assert.equal(await call, 1);
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().rejections, 0);
  });

  it('awaitProbe(): refused, the call is rejected once; a permit never waits; an abort ends the wait', async () => {
    let settle!: () => void;
    const store: import('./index.js').BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        requestProbe: () => false,
        awaitProbe: () =>
          new Promise<void>((resolve) => {
            settle = resolve;
          }),
        detach: () => {},
      }),
    };
    const { b, clock } = make({
      name: 'stored',
      store,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 100,
    });
    await fail(b);
    clock.advance(100);
    const refused = b.execute(ok);
    await Promise.resolve();
    settle();
    const err = await refused.catch((e: unknown) => e);
    assert.ok(isCircuitOpenError(err));
    assert.equal(b.stats().rejections, 1);
    assert.equal(b.tryAcquire(), undefined, 'a permit does not wait');
    const ac = new AbortController();
    const waiting = b.execute(ok, ac.signal);
    await Promise.resolve();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('caller gave up'));
    await assert.rejects(waiting, /caller gave up/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    settle();
  });

  it("untilSynced(): calls wait for the store's first read and decide on what it found", async () => {
    let synced!: () => void;
    let asked = 0;
    let handle!: import('./index.js').BreakerHandle;
    let gate: Promise<void> | undefined = new Promise<void>((resolve) => {
      synced = resolve;
    });
    const store: import('./index.js').BreakerStore = {
      attach: (h) => {
        handle = h;
        return {
          onTransition: () => {},
          untilSynced: () => {
            asked++;
            return gate;
          },
          detach: () => {},
        };
      },
    };
    const { b, clock } = make({ name: 'stored', store });
    let ran = 0;
    const calls = [b.execute(() => ++ran), b.execute(() => ++ran)];
    await Promise.resolve();
    assert.equal(ran, 0, 'no call runs before the first read');
    // the read finds the fleet open
    handle.applyRemote({ state: 'open', openUntil: clock.now() + 5000, reason: 'remote:sync' });
    gate = undefined;
    synced();
    for (const c of calls) assert.ok(isCircuitOpenError(await c.catch((e: unknown) => e)));
    assert.equal(ran, 0);
    assert.equal(b.stats().rejections, 2);
    const before = asked;
    await b.execute(ok).catch(() => {});
    await b.execute(ok).catch(() => {});
    assert.equal(asked, before + 1, 'asked until it answered undefined, then never again');
  });

  it('untilSynced(): an abort ends the wait without a listener left; a throwing store holds nothing', async () => {
    let settle!: () => void;
    const pending = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const waiting: import('./index.js').BreakerStore = {
      attach: () => ({ onTransition: () => {}, untilSynced: () => pending, detach: () => {} }),
    };
    const { b } = make({ name: 'stored', store: waiting });
    const ac = new AbortController();
    const call = b.execute(ok, ac.signal);
    await Promise.resolve();
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    ac.abort(new Error('caller gave up'));
    await assert.rejects(call, /caller gave up/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    settle();
    const throwing: import('./index.js').BreakerStore = {
      attach: () => ({
        onTransition: () => {},
        untilSynced: () => {
          throw new Error('broken store');
        },
        detach: () => {},
      }),
    };
    assert.equal(await make({ name: 'stored', store: throwing }).b.execute(ok), 'ok');
  });

  it('applyRemote applies a state without publishing it back; open->open moves the deadline silently', async () => {
    const { store, log, handle } = fakeStore();
    const { b, clock, changes } = make({ name: 'stored', store, openDuration: 100 });
    const h = handle();
    h.applyRemote({ state: 'open', openUntil: clock.now() + 5000, reason: 'remote-trip' });
    assert.equal(b.state, 'open');
    assert.equal(b.nextAttemptAt, clock.now() + 5000);
    h.applyRemote({ state: 'open', openUntil: clock.now() + 9000, reason: 'remote-probe-failed' });
    assert.equal(b.nextAttemptAt, clock.now() + 9000);
    assert.deepEqual(changes, ['closed->open:remote-trip']);
    h.applyRemote({ state: 'closed', reason: 'remote-close' });
    assert.equal(b.state, 'closed');
    assert.equal(log.filter((l) => l.startsWith('transition')).length, 0);
    assert.equal(h.snapshot().state, 'closed');
    assert.equal(b.openDurationMs(), 100);
  });

  it('a throwing store never breaks a call', async () => {
    const store = {
      attach: () => ({
        onTransition: () => {
          throw new Error('redis down');
        },
        onOutcome: () => {
          throw new Error('redis down');
        },
        requestProbe: () => {
          throw new Error('redis down');
        },
        detach: () => {},
      }),
    };
    const { b, clock } = make({
      name: 'stored',
      store,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 10,
    });
    await fail(b);
    assert.equal(b.state, 'open');
    clock.advance(10);
    await succeed(b);
    assert.equal(b.state, 'closed');
  });
});

describe('circuitBreaker: option validation', () => {
  const cases: Array<[CircuitBreakerOptions, string]> = [
    [{ openDuration: -1 }, 'circuitBreaker: option "openDuration" must be a number >= 0, got -1'],
    [{ name: '' }, 'circuitBreaker: option "name" must be a non-empty string, got ""'],
    [
      { trip: { kind: 'consecutive', threshold: 0 } },
      'circuitBreaker: option "trip.threshold" must be an integer >= 1, got 0',
    ],
    [
      { trip: { kind: 'nope' } as never },
      'circuitBreaker: option "trip.kind" must be one of "consecutive", "count", "time", "custom", got "nope"',
    ],
    [
      { trip: { kind: 'count', windowSize: 10, minimumCalls: 11 } },
      'circuitBreaker: option "trip.minimumCalls" must be an integer >= 1 and <= 10, got 11',
    ],
    [
      { trip: { kind: 'count', failureRateThreshold: 1.5 } },
      'circuitBreaker: option "trip.failureRateThreshold" must be a number > 0 and <= 1, got 1.5',
    ],
    [
      { trip: { kind: 'time', slowCallRateThreshold: 0.5 } },
      'circuitBreaker: option "trip.slowCallDuration" must be a number >= 0 when slowCallRateThreshold is set, got undefined',
    ],
    [
      { trip: { kind: 'time', buckets: 0 } },
      'circuitBreaker: option "trip.buckets" must be an integer >= 1 and <= 1000, got 0',
    ],
    [
      { trip: { kind: 'custom' } as never },
      'circuitBreaker: option "trip.predicate" must be a function, got undefined',
    ],
    [
      { trip: { kind: 'consecutive', treshold: 3 } as never },
      'circuitBreaker: option "trip.treshold" must be one of the known options (kind, threshold), got 3',
    ],
    [
      { halfOpen: { maxProbes: 0 } },
      'circuitBreaker: option "halfOpen.maxProbes" must be an integer >= 1, got 0',
    ],
    [
      { halfOpen: { deadlineMs: 0 } },
      'circuitBreaker: option "halfOpen.deadlineMs" must be a number >= 1, got 0',
    ],
    [
      { openDuration: { base: 10, max: 5 } },
      'circuitBreaker: option "openDuration.max" must be a number >= 10, got 5',
    ],
    [
      { openDuration: { base: 10, jitter: 2 } },
      'circuitBreaker: option "openDuration.jitter" must be a number >= 0 and <= 1, got 2',
    ],
    [
      { isFailure: 'yes' as never },
      'circuitBreaker: option "isFailure" must be a function or an array of error classes, got "yes"',
    ],
    [{ eagerHalfOpen: 1 as never }, 'circuitBreaker: option "eagerHalfOpen" must be true or false, got 1'],
    [
      { clock: {} as never },
      'circuitBreaker: option "clock" must be a Clock with now(), setTimeout() and clearTimeout(), got {}',
    ],
    [{ store: {} as never }, 'circuitBreaker: option "store" must be a BreakerStore with attach(), got {}'],
    [
      { store: { attach: () => ({ onTransition() {}, detach() {} }) } },
      'circuitBreaker: option "name" must be a name when store is given (breakers on one store are told apart by name), got undefined',
    ],
    [{ metricsOnly: 1 as never }, 'circuitBreaker: option "metricsOnly" must be true or false, got 1'],
    [
      { trip: { kind: 'count', window: 10, windowSize: 10 } },
      'circuitBreaker: option "trip.window" must be absent when windowSize is given (window is its deprecated name), got 10',
    ],
    [
      { trip: { kind: 'count', windowSize: 0 } },
      'circuitBreaker: option "trip.windowSize" must be an integer >= 1 and <= 1000000, got 0',
    ],
    [
      { timeout: 5 } as never,
      'circuitBreaker: option "timeout" must be one of the known options (name, clock, trip, openDuration, halfOpen, eagerHalfOpen, isFailure, isResultFailure, isNeutral, initialState, store, metricsOnly), got 5',
    ],
  ];
  for (const [opts, message] of cases)
    it(message.slice(0, 90), () => {
      assert.throws(
        () => circuitBreaker(opts),
        (err: unknown) => {
          assert.equal((err as Error).name, 'InvalidOptionError');
          assert.equal((err as Error).message, message);
          return true;
        },
      );
    });
});

describe('circuitBreaker: idle cost', () => {
  it('10,000 idle breakers hold no timer', async () => {
    const clock = new TestClock();
    const all: CircuitBreaker[] = [];
    for (let i = 0; i < 10_000; i++) {
      const kind = i % 3;
      const b = circuitBreaker({
        clock,
        trip:
          kind === 0
            ? { kind: 'consecutive', threshold: 1 }
            : kind === 1
              ? { kind: 'count', windowSize: 10, minimumCalls: 1 }
              : { kind: 'time', windowMs: 1_000, minimumCalls: 1 },
        openDuration: 100,
      });
      all.push(b);
      await b.execute(ok);
      if (i % 2 === 0) await fail(b);
      await b.execute(ok).catch(() => {}); // a rejection while open arms the end-of-period timer
    }
    clock.advance(1_000); // every open period and every time bucket has ended
    assert.equal(clock.pending, 0);
    assert.equal(all.filter((b) => b.state === 'open').length, 5_000);
  });

  it('a process with 10,000 breakers on the system clock exits on its own', async () => {
    const { spawn } = await import('node:child_process');
    const index = new URL('./index.js', import.meta.url).href;
    const script = `
      import { circuitBreaker } from ${JSON.stringify(index)};
      const fail = () => Promise.reject(new Error('x'));
      for (let i = 0; i < 10000; i++) {
        const b = circuitBreaker({
          trip: i % 2 ? { kind: 'time', windowMs: 600000, minimumCalls: 1 } : { kind: 'consecutive', threshold: 1 },
          openDuration: 600000,
          eagerHalfOpen: i % 4 === 0,
          halfOpen: { deadlineMs: 600000 },
        });
        await b.execute(() => 1);
        if (i % 3 === 0) { await b.execute(fail).catch(() => {}); await b.execute(() => 1).catch(() => {}); }
      }
      console.log('done');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(killer);
    assert.equal(out.trim(), 'done');
    assert.equal(code, 0, 'the process must exit by itself, long before its 600 s timers');
  });
});

describe('CircuitOpenError', () => {
  it('is cheap: no Error constructor, no stack frames, message built on first read, yet an Error', async () => {
    const { b } = make({ name: 'cheap', trip: { kind: 'consecutive', threshold: 1 } });
    const cause = new Error('refused');
    await fail(b, 1, cause);
    const err = await b.execute(ok).catch((e: unknown) => e);
    assert.ok(err instanceof Error);
    assert.ok(isCircuitOpenError(err));
    assert.equal(Object.hasOwn(err, 'message'), false, 'formatted lazily');
    assert.equal(err.message.startsWith('Circuit "cheap" OPEN until '), true);
    assert.equal(err.stack!.includes('\n    at '), false, 'no stack frames captured');
    assert.equal(err.stack!.split('\n')[0], `CircuitOpenError: ${err.message}`);
    assert.equal(err.cause, cause);
    assert.equal(String(err), `CircuitOpenError: ${err.message}`);
    assert.equal(util.types.isNativeError(err), false, 'made without the Error constructor');
    assert.equal(JSON.parse(JSON.stringify(err)).breakerName, 'cheap');
    assert.match(util.inspect(err), /^\[CircuitOpenError: Circuit "cheap" OPEN until /);
    err.stack = 'replaced';
    assert.equal(err.stack, 'replaced');
    const native = new CircuitOpenError({ breakerName: 'n', state: 'open', retryAt: 0, retryAfter: 0 });
    assert.equal(util.types.isNativeError(native), true);
    assert.match(
      native.stack!,
      /^CircuitOpenError: Circuit "n" OPEN until 1970-01-01T00:00:00.000Z \(0 s remaining\)\n {4}at /,
    );
  });

  it('the guard checks the code, so it works across copies of the package', () => {
    assert.equal(isCircuitOpenError({ code: 'ERR_CIRCUIT_OPEN' }), true);
    assert.equal(isCircuitOpenError(new Error('x')), false);
    assert.equal(isCircuitOpenError(null), false);
  });
});

describe('circuitBreaker: shared settings', () => {
  it('breakers with equal numeric settings but different classifiers keep their own classifiers', async () => {
    const clock = new TestClock();
    const plain = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 }, openDuration: 1234 });
    const picky = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 1234,
      isFailure: (e) => (e as Error).message === 'counts',
    });
    await assert.rejects(picky.execute(() => Promise.reject(new Error('ignored'))));
    assert.equal(picky.state, 'closed');
    await assert.rejects(plain.execute(() => Promise.reject(new Error('ignored'))));
    assert.equal(plain.state, 'open');
  });
});

describe('circuitBreaker: very long periods', () => {
  it('openDuration: Infinity stays open (timers re-arm instead of firing early) and survives JSON', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: Number.POSITIVE_INFINITY,
      eagerHalfOpen: true,
    });
    await fail(b);
    clock.advance(3_000_000_000); // longer than a Node timer can wait
    assert.equal(b.state, 'open');
    assert.equal(clock.pending, 1);
    await assert.rejects(b.execute(ok), isCircuitOpenError);
    const c = circuitBreaker({ clock, initialState: JSON.parse(JSON.stringify(b)) });
    assert.equal(c.state, 'open');
    assert.equal(c.nextAttemptAt, Number.POSITIVE_INFINITY);
  });

  it('a 40-day open period half-opens at its end, not when the capped timer fires', async () => {
    const day = 86_400_000;
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 40 * day,
      eagerHalfOpen: true,
    });
    await fail(b);
    clock.advance(39 * day);
    assert.equal(b.state, 'open');
    clock.advance(day);
    assert.equal(b.state, 'half-open');
  });

  it('rejects a non-signal passed as the signal', async () => {
    const { b } = make();
    await assert.rejects(b.execute(ok, {} as AbortSignal), /signal must be an AbortSignal/);
  });
});

describe('circuitBreaker: waitForProbes with several probes', () => {
  it('a waiter takes a probe slot freed by a successful probe while more successes are needed', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 10,
      halfOpen: { waitForProbes: true, successesToClose: 2 },
    });
    await fail(b);
    clock.advance(10);
    let release!: () => void;
    const first = b.execute(() => new Promise<string>((r) => (release = () => r('first'))));
    const order: string[] = [];
    const second = b.execute(() => {
      order.push(`second runs in ${b.state}`);
      return 'second';
    });
    const third = b.execute(() => {
      order.push(`third runs in ${b.state}`);
      return 'third';
    });
    await Promise.resolve();
    assert.deepEqual(order, []);
    release();
    assert.deepEqual(await Promise.all([first, second, third]), ['first', 'second', 'third']);
    // second became the second probe (half-open); its success closed the breaker; third ran closed
    assert.deepEqual(order, ['second runs in half-open', 'third runs in closed']);
    assert.equal(b.state, 'closed');
  });

  it('an aborted waiter leaves no listener behind', async () => {
    const { b, clock } = make({
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 10,
      halfOpen: { waitForProbes: true },
    });
    await fail(b);
    clock.advance(10);
    let release!: () => void;
    const probe = b.execute(() => new Promise<void>((r) => (release = r)));
    const ac = new AbortController();
    let added = 0;
    let removed = 0;
    const add = ac.signal.addEventListener.bind(ac.signal);
    const remove = ac.signal.removeEventListener.bind(ac.signal);
    ac.signal.addEventListener = ((...a: Parameters<typeof add>) => {
      added++;
      return add(...a);
    }) as typeof add;
    ac.signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
      removed++;
      return remove(...a);
    }) as typeof remove;
    const waiter = b.execute(() => 'ran', ac.signal);
    release();
    await probe;
    assert.equal(await waiter, 'ran');
    assert.equal(added, 1);
    assert.equal(removed, 1, 'the abort listener is removed once the wait ends');
  });
});
