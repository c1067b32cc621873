import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  circuitBreaker,
  constantBackoff,
  isInvalidOptionError,
  isTimeoutError,
  retry,
  timeout,
  wrap,
} from './index.js';
import { faulty, TestClock } from './testing.js';

describe('faulty', () => {
  it('follows a list schedule, then `afterwards`, and logs every call', async () => {
    const clock = new TestClock(0);
    const special = new Error('503');
    const fn = faulty({
      schedule: ['ok', 'fail', { fail: special }, { slow: 100 }, { slow: 50, result: 'fail' }],
      afterwards: 'fail',
      value: 'v',
      error: (call) => new Error(`e${call}`),
      clock,
    });
    assert.equal(await fn(), 'v');
    await assert.rejects(fn(), /^Error: e2$/);
    await assert.rejects(fn(), (e) => e === special);
    const slow = fn();
    const slowFail = assert.rejects(fn(), /^Error: e5$/);
    assert.equal(fn.inFlight, 2);
    assert.equal(await clock.settle(slow), 'v');
    assert.equal(clock.now(), 100);
    await slowFail;
    await assert.rejects(fn(), /^Error: e6$/, 'past the list: afterwards');
    assert.equal(fn.calls, 6);
    assert.equal(fn.inFlight, 0);
    assert.deepEqual(
      fn.log.map((c) => [c.call, c.fault, c.outcome, c.startedAt, c.settledAt]),
      [
        [1, 'ok', 'ok', 0, 0],
        [2, 'fail', 'failed', 0, 0],
        [3, 'fail', 'failed', 0, 0],
        [4, 'slow', 'ok', 0, 100],
        [5, 'slow', 'failed', 0, 50],
        [6, 'fail', 'failed', 100, 100],
      ],
    );
  });

  it('defaults: value is the call number, afterwards is ok, errors name the call', async () => {
    const fn = faulty({ schedule: ['fail'] });
    await assert.rejects(fn(), /^Error: faulty: call 1 failed$/);
    assert.equal(await fn(), 2);
    assert.equal(await fn(), 3);
  });

  it('a schedule function sees the call number and the time: an outage in time', async () => {
    const clock = new TestClock(0);
    const calls: number[] = [];
    const fn = faulty({
      schedule: (call, now) => {
        calls.push(call);
        return now >= 1_000 && now < 3_000 ? 'fail' : 'ok';
      },
      clock,
    });
    const outcomes: string[] = [];
    for (let t = 0; t < 4_000; t += 500) {
      outcomes.push(
        await fn().then(
          () => 'ok',
          () => 'fail',
        ),
      );
      clock.advance(500);
    }
    assert.deepEqual(outcomes, ['ok', 'ok', 'fail', 'fail', 'fail', 'fail', 'ok', 'ok']);
    assert.deepEqual(calls, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.throws(
      () => faulty({ schedule: () => 'boom' as never })(),
      /faulty: option "schedule\(1\)" must be 'ok', 'fail', 'hang', \{ slow: ms \} or \{ fail: error \}, got "boom"/,
    );
  });

  it('hang and slow stop when the signal aborts, with its reason; hang never settles otherwise', async () => {
    const clock = new TestClock(0);
    const fn = faulty({ schedule: ['hang', { slow: 1_000 }, 'hang'], clock });
    const ac = new AbortController();
    const hung = fn({ signal: ac.signal });
    const slow = fn({ signal: ac.signal });
    let settled = false;
    const bare = fn().finally(() => {
      settled = true;
    });
    clock.advance(500);
    ac.abort(new Error('stop'));
    await assert.rejects(hung, /stop/);
    await assert.rejects(slow, /stop/);
    assert.equal(clock.pending, 0, 'the slow timer was cleared');
    await assert.rejects(clock.settle(bare), /no timer is scheduled/);
    assert.equal(settled, false);
    assert.deepEqual(
      fn.log.map((c) => c.outcome),
      ['aborted', 'aborted', 'pending'],
    );
    assert.equal(fn.inFlight, 1);
    // An already aborted signal rejects at once.
    const again = faulty({ schedule: ['hang'] });
    await assert.rejects(again({ signal: AbortSignal.abort(new Error('gone')) }), /gone/);
  });

  it('validates its options, naming the field', () => {
    const bad = (o: unknown, re: RegExp) =>
      assert.throws(
        () => faulty(o as Parameters<typeof faulty>[0]),
        (e: unknown) => isInvalidOptionError(e) && re.test(String(e)),
      );
    bad({ schedule: 'fail' }, /option "schedule" must be a list of faults or a function/);
    bad({ schedule: ['ok', 'nope'] }, /option "schedule\[1\]" must be 'ok', 'fail', 'hang'/);
    bad({ schedule: [{ slow: -1 }] }, /option "schedule\[0\]\.slow" must be a number >= 0, got -1/);
    bad(
      { schedule: [{ slow: 1, result: 'hang' }] },
      /option "schedule\[0\]\.result" must be 'ok' or 'fail', got "hang"/,
    );
    bad({ schedule: [], afterwards: 'maybe' }, /option "afterwards" must be/);
    bad({ schedule: [], error: 1 }, /option "error"/);
    bad({ schedule: [], clock: {} }, /option "clock"/);
    bad({ schedule: [], extra: 1 }, /option "extra"/);
  });
});

describe('TestClock + faulty: a retry + timeout chain with no hand-written clock', () => {
  it('a hung attempt times out, a failure is retried after its backoff, the third attempt succeeds', async () => {
    const clock = new TestClock(0);
    const fn = faulty({ schedule: ['hang', 'fail', 'ok'], value: 'done', clock });
    // As in the README's testing FAQ.
    const chain = wrap(
      retry({ maxAttempts: 3, backoff: constantBackoff(200), clock }),
      circuitBreaker({ clock }),
      timeout({ ms: 1_000, clock }),
    );
    assert.equal(await clock.settle(chain.execute(fn)), 'done');
    assert.deepEqual(
      fn.log.map((c) => [c.outcome, c.startedAt, c.settledAt]),
      [
        ['aborted', 0, 1_000],
        ['failed', 1_200, 1_200],
        ['ok', 1_400, 1_400],
      ],
    );
  });

  it('an aggressive timeout gives up on a hang that ignores its signal', async () => {
    const clock = new TestClock(0);
    const fn = faulty({ schedule: ['hang'], clock });
    const t = timeout({ ms: 250, strategy: 'aggressive', clock });
    await assert.rejects(clock.settle(t.execute(() => fn())), isTimeoutError);
    assert.equal(clock.now(), 250);
    assert.equal(fn.inFlight, 1, 'the hung call itself is still pending: it ignored the deadline');
  });
});
