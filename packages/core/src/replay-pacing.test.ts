import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exponentialBackoff } from './backoff.js';
import { CircuitOpenError } from './errors.js';
import { ReplayPacing } from './replay-pacing.js';
import { TestClock } from './test-clock.js';

const setup = () => {
  const clock = new TestClock();
  const pacing = new ReplayPacing(
    exponentialBackoff({ initialDelay: 100, multiplier: 2, maxDelay: 1_000 }),
    clock,
    () => 0.5,
  );
  return { clock, pacing };
};
const open = (retryAt: number | undefined) =>
  new CircuitOpenError({ breakerName: 'b', state: 'open', retryAt, retryAfter: undefined });

describe('ReplayPacing', () => {
  it('backs off after each failure; a success or a closing breaker starts over', () => {
    const { clock, pacing } = setup();
    assert.equal(pacing.retryAt, 0);
    assert.equal(pacing.failed(), 100);
    assert.equal(pacing.retryAt, clock.now() + 100);
    assert.equal(pacing.failed(), 200);
    pacing.succeeded();
    assert.equal(pacing.retryAt, 0);
    assert.equal(pacing.failed(), 100);
    pacing.failed();
    pacing.breakerClosed();
    assert.equal(pacing.retryAt, 0);
    assert.equal(pacing.failed(), 100);
  });

  it('a failed first attempt owes a backoff, unless one is owed already or the breaker refused it', () => {
    const { clock, pacing } = setup();
    pacing.firstAttemptFailed(open(clock.now() + 5_000));
    assert.equal(pacing.retryAt, 0, 'an open breaker: its closing starts replays');
    pacing.firstAttemptFailed(new Error('down'));
    assert.equal(pacing.retryAt, clock.now() + 100);
    pacing.firstAttemptFailed(new Error('down'));
    assert.equal(pacing.retryAt, clock.now() + 100, 'a wait still ahead is not lengthened');
    clock.advance(100);
    pacing.firstAttemptFailed(new Error('down'));
    assert.equal(pacing.retryAt, clock.now() + 200, 'a wait in the past owes nothing: a new backoff');
  });

  it("an open breaker's refusal: back when it says, or after a backoff when it names no time ahead", () => {
    const { clock, pacing } = setup();
    pacing.circuitOpen(open(clock.now() + 5_000));
    assert.equal(pacing.retryAt, clock.now() + 5_000);
    pacing.circuitOpen(open(undefined));
    assert.equal(pacing.retryAt, clock.now() + 100);
    pacing.circuitOpen(open(clock.now() - 1));
    assert.equal(pacing.retryAt, clock.now() + 200);
  });
});
