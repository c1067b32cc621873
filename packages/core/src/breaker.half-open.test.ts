/**
 * Half-open judges a fixed sample of probes, and its verdict does not depend on which probe
 * finishes first: property tests permute completion orders (and interleave admissions with them).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type CircuitBreaker, type CircuitBreakerOptions, circuitBreaker, type Permit } from './index.js';
import { TestClock } from './test-clock.js';

// Under mutation testing (this file runs once per mutant) a tenth of the runs keeps a whole-file
// run affordable; `npm test` always runs the full counts.
const runs = (n: number): number => (process.env.__STRYKER_ACTIVE_MUTANT__ === undefined ? n : n / 10);

/** A breaker that is half-open on its next admission. */
function halfOpen(halfOpenOptions: CircuitBreakerOptions['halfOpen']) {
  const clock = new TestClock();
  const b = circuitBreaker({
    clock,
    trip: { kind: 'consecutive', threshold: 1 },
    openDuration: 10,
    halfOpen: halfOpenOptions,
  });
  const reasons: string[] = [];
  b.on('stateChange', (e) => reasons.push(e.reason));
  b.tryAcquire()!.failure(new Error('trip'));
  clock.advance(10);
  return { b, clock, reasons };
}

/** Admits `n` probes at once and settles them in the given order (true = failure). */
function settleInOrder(b: CircuitBreaker, failures: boolean[]): string {
  const permits: Permit[] = [];
  for (let i = 0; i < failures.length; i++) {
    const p = b.tryAcquire();
    assert.ok(p, `probe ${i} admitted`);
    permits.push(p);
  }
  for (const [i, failed] of failures.entries()) {
    if (failed) permits[i]!.failure(new Error('probe'));
    else permits[i]!.success();
  }
  return b.state;
}

describe('circuitBreaker: half-open judged as a rate', () => {
  const options = { maxProbes: 4, successesToClose: 4, failureRateThreshold: 0.5 };

  it('1 failed probe of 4 (25%) closes, whether it finishes first or last', () => {
    for (const order of [
      [true, false, false, false],
      [false, false, false, true],
      [false, true, false, false],
    ]) {
      const { b, reasons } = halfOpen(options);
      assert.equal(settleInOrder(b, order), 'closed', JSON.stringify(order));
      assert.equal(reasons.at(-1), 'probe-succeeded');
    }
  });

  it('2 failed probes of 4 (50%) reopen, whether they finish first or last', () => {
    for (const order of [
      [true, true, false, false],
      [false, false, true, true],
      [true, false, false, true],
    ]) {
      const { b, reasons } = halfOpen(options);
      assert.equal(settleInOrder(b, order), 'open', JSON.stringify(order));
      assert.equal(reasons.at(-1), 'probe-failure-rate');
    }
  });

  it('the sample is fixed: a fifth caller is rejected while the four probes run', () => {
    const { b } = halfOpen(options);
    const permits = [1, 2, 3, 4].map(() => b.tryAcquire()!);
    assert.equal(b.tryAcquire(), undefined);
    permits[0]!.failure(new Error('x')); // 1 of 4 failed, 3 outstanding: undecided
    assert.equal(b.state, 'half-open');
    assert.equal(b.tryAcquire(), undefined, 'a finished probe frees no place in the sample');
    permits[1]!.success();
    permits[2]!.success();
    permits[3]!.success();
    assert.equal(b.state, 'closed');
  });

  it('a neutral probe gives its place in the sample back', () => {
    const { b } = halfOpen({ maxProbes: 2, failureRateThreshold: 0.5 });
    const p1 = b.tryAcquire()!;
    const p2 = b.tryAcquire()!;
    p1.neutral();
    const p3 = b.tryAcquire();
    assert.ok(p3, 'the cancelled probe is replaced');
    p2.success();
    p3.failure(new Error('x')); // 1 of 2 = 50%
    assert.equal(b.state, 'open');
  });

  it('with one probe at a time, the sample is successesToClose probes in a row', () => {
    const { b } = halfOpen({ successesToClose: 3, failureRateThreshold: 0.5 });
    b.tryAcquire()!.success();
    b.tryAcquire()!.failure(new Error('x')); // 1 of 3 so far; the third decides
    assert.equal(b.state, 'half-open');
    b.tryAcquire()!.success(); // 1 of 3 = 33% < 50%
    assert.equal(b.state, 'closed');
  });

  it('the verdict is announced as soon as the outstanding probes cannot change it', () => {
    const { b } = halfOpen(options);
    const permits = [1, 2, 3, 4].map(() => b.tryAcquire()!);
    permits[0]!.success();
    permits[1]!.success();
    assert.equal(b.state, 'half-open', '2 outstanding could still make 50%');
    permits[2]!.success();
    assert.equal(b.state, 'closed', 'even a failure of the last one is 25%');
    permits[3]!.failure(new Error('late')); // a probe of the ended period: ignored
    assert.equal(b.state, 'closed');
    assert.equal(b.stats().consecutiveFailures, 0);
  });
});

describe('circuitBreaker: half-open verdicts do not depend on completion order', () => {
  /**
   * A random schedule over one half-open period: admit a probe when a place is free, or settle a
   * random running one. Probes take their outcomes from `outcomes` in admission order, so every
   * schedule judges the same sample; the verdict must be the one the sample's failure count gives.
   */
  const scenario = fc
    .record({
      maxProbes: fc.integer({ min: 1, max: 5 }),
      successesToClose: fc.integer({ min: 1, max: 6 }),
      rate: fc.constantFrom(undefined, 0.1, 0.25, 0.5, 0.7, 0.75, 1),
      outcomes: fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
      schedule: fc.array(fc.nat(), { minLength: 30, maxLength: 30 }),
    })
    .map((s) => ({ ...s, sample: Math.max(s.maxProbes, s.successesToClose) }));

  it('every schedule of the same sample gives the verdict its failure count gives', () => {
    fc.assert(
      fc.property(scenario, ({ maxProbes, successesToClose, rate, outcomes, schedule, sample }) => {
        const { b } = halfOpen({ maxProbes, successesToClose, failureRateThreshold: rate });
        const failures = outcomes.slice(0, sample).filter(Boolean).length;
        const expected = (rate === undefined ? failures > 0 : failures / sample >= rate) ? 'open' : 'closed';
        const running: Array<[Permit, boolean]> = [];
        let admitted = 0;
        for (const pick of schedule) {
          if (admitted > 0 && b.state !== 'half-open') break; // open until the first admission
          const canAdmit = running.length < maxProbes && admitted < sample;
          if (canAdmit && (running.length === 0 || pick % 2 === 0)) {
            const p = b.tryAcquire();
            assert.ok(p, `probe ${admitted} admitted`);
            running.push([p, outcomes[admitted++]!]);
          } else {
            if (!canAdmit)
              assert.equal(
                b.tryAcquire(),
                undefined,
                'no probe beyond maxProbes at once or the sample in all',
              );
            const [p, failed] = running.splice(pick % running.length, 1)[0]!;
            if (failed) p.failure(new Error('probe'));
            else p.success();
          }
        }
        assert.equal(b.state, expected);
      }),
      { numRuns: runs(5_000) },
    );
  });

  it('through execute: the same outcomes settled in every order give the same verdict', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom(undefined, 0.25, 0.5, 1),
        fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }),
        fc.array(fc.nat(), { minLength: 4, maxLength: 4 }),
        async (maxProbes, rate, outcomes, order) => {
          const { b } = halfOpen({ maxProbes, failureRateThreshold: rate });
          const sample = outcomes.slice(0, maxProbes);
          const settle: Array<() => Promise<unknown>> = sample.map((failed) => {
            let done!: () => void;
            const p = b
              .execute(() =>
                new Promise<void>((r) => (done = r)).then(() => failed && Promise.reject(new Error('p'))),
              )
              .catch(() => {});
            return () => {
              done();
              return p;
            };
          });
          const remaining = settle.slice();
          for (const k of order)
            if (remaining.length > 0) await remaining.splice(k % remaining.length, 1)[0]!();
          const failures = sample.filter(Boolean).length;
          const opens = rate === undefined ? failures > 0 : failures / maxProbes >= rate;
          assert.equal(b.state, opens ? 'open' : 'closed');
        },
      ),
      { numRuns: runs(1_000) },
    );
  });
});

describe('circuitBreaker: half-open edges', () => {
  it('a 40-day half-open deadline reopens at its end, not when the capped timer fires', () => {
    const day = 86_400_000;
    const { b, clock } = halfOpen({ deadlineMs: 40 * day });
    const probe = b.tryAcquire();
    assert.ok(probe);
    assert.equal(b.state, 'half-open');
    clock.advance(39 * day); // Node timers wait at most ~24.8 days: the first one fires early
    assert.equal(b.state, 'half-open');
    clock.advance(day);
    assert.equal(b.state, 'open');
  });

  it('a reopened breaker reports the failed probes, not the failures of the first trip', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 3 }, openDuration: 10 });
    for (let i = 0; i < 3; i++) b.tryAcquire()!.failure(new Error('x'));
    const first = await b.execute(() => 1).catch((e: { failures?: number }) => e.failures);
    assert.equal(first, 3);
    clock.advance(10);
    b.tryAcquire()!.failure(new Error('probe'));
    const second = await b.execute(() => 1).catch((e: { failures?: number }) => e.failures);
    assert.equal(second, 1);
  });

  it('the open period over but the store refused the probe: retry now (retryAfter 0), not in the past', async () => {
    const clock = new TestClock();
    const b = circuitBreaker({
      name: 'refused',
      clock,
      trip: { kind: 'consecutive', threshold: 1 },
      openDuration: 10,
      store: { attach: () => ({ onTransition() {}, requestProbe: () => false, detach() {} }) },
    });
    b.tryAcquire()!.failure(new Error('x'));
    clock.advance(25);
    const err = await b.execute(() => 1).catch((e: { retryAt?: number; retryAfter?: number }) => e);
    assert.equal(b.state, 'open');
    assert.deepEqual(
      [(err as { retryAt: number }).retryAt, (err as { retryAfter: number }).retryAfter],
      [clock.now(), 0],
    );
  });
});
