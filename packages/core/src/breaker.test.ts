import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type BreakerEvents,
  type CircuitBreaker,
  type CircuitBreakerOptions,
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
});
