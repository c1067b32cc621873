import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import {
  bulkhead,
  circuitBreaker,
  constantBackoff,
  fallback,
  isCircuitOpenError,
  isTimeoutError,
  type PolicyContext,
  retry,
  timeout,
  wrap,
} from './index.js';
import { TestClock } from './test-clock.js';

describe('wrap', () => {
  it('composes left = outermost with a merged typed context', async () => {
    const clock = new TestClock();
    const order: string[] = [];
    const tag = (name: string) => ({
      contextKeys: [] as readonly string[],
      execute<T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
        order.push(`>${name}`);
        return Promise.resolve()
          .then(() => fn({ signal: signal ?? new AbortController().signal }))
          .finally(() => order.push(`<${name}`));
      },
    });
    const p = wrap(tag('a'), retry({ maxAttempts: 2, backoff: constantBackoff(0), clock }), tag('b'));
    const got = await p.execute((ctx) => {
      const attempt: number = ctx.attempt; // typed from retry's context
      if (attempt === 1) throw new Error('again');
      return attempt;
    });
    assert.equal(got, 2);
    assert.deepEqual(order, ['>a', '>b', '<b', '>b', '<b', '<a']);
  });

  it('fallback(retry(breaker(timeout(fn)))): timeouts trip the breaker, retry stops at open, fallback answers', async () => {
    const clock = new TestClock();
    const breaker = circuitBreaker({
      clock,
      trip: { kind: 'consecutive', threshold: 2 },
      openDuration: 10_000,
    });
    const r = retry({ maxAttempts: 5, backoff: constantBackoff(10), clock });
    const gave: string[] = [];
    r.on('giveUp', (e) => gave.push(e.reason));
    const policy = wrap(
      fallback({ value: 'fallback' }),
      r,
      breaker,
      timeout({ ms: 100, strategy: 'aggressive', clock }),
    );
    let calls = 0;
    const p = policy.execute(() => {
      calls++;
      return new Promise<string>(() => {});
    });
    await clock.advanceAsync(100); // attempt 1 times out
    await clock.advanceAsync(10 + 100); // attempt 2 times out; breaker opens
    await clock.advanceAsync(10); // attempt 3 rejected by the open breaker: retry gives up
    assert.equal(await p, 'fallback');
    assert.equal(calls, 2);
    assert.equal(breaker.state, 'open');
    assert.deepEqual(gave, ['circuit-open']);
  });

  it('without fallback the errors surface: TimeoutError then CircuitOpenError', async () => {
    const clock = new TestClock();
    const breaker = circuitBreaker({ clock, trip: { kind: 'consecutive', threshold: 1 } });
    const p = wrap(breaker, timeout({ ms: 50, strategy: 'aggressive', clock }));
    const first = p.execute(() => new Promise(() => {}));
    clock.advance(50);
    await assert.rejects(first, isTimeoutError);
    await assert.rejects(
      p.execute(() => 1),
      isCircuitOpenError,
    );
  });

  it('the caller signal reaches the innermost context and no listener outlives its call', async () => {
    const clock = new TestClock();
    const p = wrap(
      retry({ maxAttempts: 2, clock }),
      circuitBreaker({ clock }),
      bulkhead({ maxConcurrent: 4 }),
      timeout({ ms: 1_000, clock }),
    );
    const ac = new AbortController();
    for (let i = 0; i < 2_000; i++) {
      await p.execute(async ({ signal, attempt }) => (signal.aborted ? -1 : attempt), ac.signal);
    }
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    const hung = p.execute(
      ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
      ac.signal,
    );
    ac.abort(new Error('bye'));
    await assert.rejects(hung, /bye/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
  });

  it('nests, and a fallback widens the result type', async () => {
    const clock = new TestClock();
    const innerPolicy = wrap(
      retry({ maxAttempts: 2, backoff: constantBackoff(0), clock }),
      timeout({ ms: 10, clock }),
    );
    const outer = wrap(fallback({ value: 'none' as const }), innerPolicy);
    let n = 0;
    const ok: number | 'none' = await outer.execute(({ attempt }) => {
      n++;
      if (attempt < 2) throw new Error('once');
      return attempt;
    });
    assert.equal(ok, 2);
    const failed: number | 'none' = await outer.execute(async (): Promise<number> => {
      throw new Error('always');
    });
    assert.equal(failed, 'none');
    assert.equal(n, 2);
  });

  it('rejects non-policies', () => {
    assert.throws(() => wrap(), /at least one/);
    assert.throws(() => wrap({} as never), /argument 0 is not a policy/);
  });
});
