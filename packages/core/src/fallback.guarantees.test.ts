// Guarantees of fallback() that its first tests left unpinned (found by mutation testing,
// `npm run mutation -- fallback`): the exact validation messages, which outcomes and keys reach
// the fallback, the context handed to `fn` and the fallback function, and the last-good cache's
// TTL boundary and eviction order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  type FallbackOutcome,
  fallback,
  type PolicyContext,
  RateLimitedError,
  TimeoutError,
} from './index.js';
import { neverAbortedSignal } from './policy.js';
import { TestClock } from './test-clock.js';

const open = () =>
  new CircuitOpenError({ breakerName: 'x', state: 'open', retryAt: undefined, retryAfter: undefined });

const invalid = (option: string, message: string) => (e: unknown) => {
  assert.equal((e as { name?: string }).name, 'InvalidOptionError');
  assert.equal((e as { option?: string }).option, option);
  assert.equal((e as Error).message, message);
  return true;
};

describe('fallback: options', () => {
  it('names the answers given when not exactly one is', () => {
    assert.throws(
      () => fallback({ value: 1, fn: () => 2 }),
      invalid(
        'value | fn | lastGood',
        'fallback: option "value | fn | lastGood" must be exactly one of them, got "value, fn"',
      ),
    );
    assert.throws(
      () => fallback({ value: 1, fn: () => 2, lastGood: { ttlMs: 1 } }),
      /got "value, fn, lastGood"/,
    );
    // A key present but undefined is not an answer.
    const fb = fallback<number>({ value: undefined, fn: () => 5 });
    return fb.execute(() => Promise.reject(new Error('x'))).then((v) => assert.equal(v, 5));
  });

  it('validates fn, lastGood and on, naming the option', () => {
    assert.throws(
      () => fallback(null as never),
      invalid('options', 'fallback: option "options" must be an object, got null'),
    );
    assert.throws(
      () => fallback({ fn: 3 as never }),
      invalid('fn', 'fallback: option "fn" must be a function, got 3'),
    );
    assert.throws(
      () => fallback({ lastGood: 5 as never }),
      invalid('lastGood', 'fallback: option "lastGood" must be an object, got 5'),
    );
    assert.throws(
      () => fallback({ lastGood: { ttlMs: 1, ttl: 2 } as never }),
      invalid(
        'lastGood.ttl',
        'fallback: option "lastGood.ttl" must be one of the known options (ttlMs, maxSize), got 2',
      ),
    );
    assert.throws(
      () => fallback({ lastGood: { ttlMs: 1, maxSize: 0 } }),
      /option "lastGood.maxSize" must be an integer >= 1/,
    );
    assert.throws(() => fallback({ lastGood: { ttlMs: 1, maxSize: 1.5 } }), /option "lastGood.maxSize"/);
    assert.throws(() => fallback({ lastGood: {} as never }), /option "lastGood.ttlMs"/);
    const onMessage =
      'fallback: option "on" must be a predicate or a non-empty list of "open", "timeout", "bulkhead", "rateLimited", "failure", got ';
    assert.throws(() => fallback({ value: 1, on: [] }), invalid('on', `${onMessage}[]`));
    assert.throws(() => fallback({ value: 1, on: 'open' as never }), invalid('on', `${onMessage}"open"`));
    assert.throws(() => fallback({ value: 1, on: ['open', 'nope' as FallbackOutcome] }), /option "on"/);
    assert.throws(() => fallback({ value: 1, clock: {} as never }), /option "clock"/);
    assert.throws(() => fallback({ value: 1, valu: 2 } as never), /option "valu"/);
  });

  it('maxSize defaults to 1000 keys', async () => {
    const fb = fallback<number>({ lastGood: { ttlMs: 1_000 }, clock: new TestClock() });
    for (let i = 0; i <= 1_000; i++) await fb.forKey(`k${i}`).execute(() => i);
    const fail = () => Promise.reject(new Error('down'));
    // 1001 keys stored: the first was dropped, the second is still there.
    await assert.rejects(fb.forKey('k0').execute(fail), /down/);
    assert.equal(await fb.forKey('k1').execute(fail), 1);
    assert.equal(await fb.forKey('k1000').execute(fail), 1_000);
  });
});

describe('fallback: calls', () => {
  it('kind and contextKeys', () => {
    const fb = fallback({ value: 1 });
    assert.equal(fb.kind, 'fallback');
    assert.deepEqual(fb.contextKeys, []);
    assert.equal(fb.forKey('k').kind, 'fallback');
  });

  it('rejects a non-function and a non-string key with a TypeError', async () => {
    const fb = fallback({ value: 1 });
    await assert.rejects(fb.execute(5 as never), {
      name: 'TypeError',
      message: 'execute: fn must be a function',
    });
    assert.throws(() => fb.forKey(5 as never), {
      name: 'TypeError',
      message: 'forKey: key must be a string',
    });
  });

  it('hands fn the caller signal, or a signal that never aborts', async () => {
    const fb = fallback({ value: 1 });
    let seen: PolicyContext | undefined;
    await fb.execute((ctx) => {
      seen = ctx;
    });
    assert.equal(seen!.signal, neverAbortedSignal);
    const ac = new AbortController();
    await fb.execute((ctx) => {
      seen = ctx;
    }, ac.signal);
    assert.equal(seen!.signal, ac.signal);
  });

  it('the fallback function gets the error, the signal and the key', async () => {
    const calls: { error: unknown; signal: AbortSignal; key: string }[] = [];
    const fb = fallback<string>({
      fn: async (error, { signal, key }) => {
        calls.push({ error, signal, key });
        return `for ${key}`;
      },
    });
    const e1 = new Error('one');
    assert.equal(await fb.execute(() => Promise.reject(e1)), 'for default');
    const ac = new AbortController();
    const e2 = new Error('two');
    assert.equal(await fb.forKey('users').execute(() => Promise.reject(e2), ac.signal), 'for users');
    // Signals by identity: deepEqual finds any two unaborted signals equal.
    assert.deepEqual(
      calls.map((c) => ({
        ...c,
        signal: c.signal === ac.signal ? 'caller' : c.signal === neverAbortedSignal ? 'never' : 'other',
      })),
      [
        { error: e1, signal: 'never', key: 'default' },
        { error: e2, signal: 'caller', key: 'users' },
      ],
    );
    // A fallback function that throws gives up: its error is the call's.
    const giveUp = fallback({
      fn: () => {
        throw new Error('no answer');
      },
    });
    await assert.rejects(
      giveUp.execute(() => Promise.reject(new Error('x'))),
      /no answer/,
    );
  });

  it('classifies every outcome, for the event and for `on`', async () => {
    const cases: [FallbackOutcome, () => unknown][] = [
      ['open', open],
      ['timeout', () => new TimeoutError(5)],
      ['bulkhead', () => new BulkheadRejectedError(1, 0)],
      ['rateLimited', () => new RateLimitedError(10)],
      ['failure', () => new Error('plain')],
    ];
    const all = fallback({ value: 'v' });
    const events: { error: unknown; outcome: FallbackOutcome; key: string }[] = [];
    all.on('fallback', (e) => events.push(e));
    for (const [outcome, make] of cases) {
      const err = make();
      assert.equal(await all.forKey(outcome).execute(() => Promise.reject(err)), 'v');
      assert.deepEqual(events.pop(), { error: err, outcome, key: outcome });
      // Only the listed outcome gets the fallback.
      const only = fallback({ value: 'only', on: [outcome] });
      for (const [other, makeOther] of cases) {
        const p = only.execute(() => Promise.reject(makeOther()));
        if (other === outcome) assert.equal(await p, 'only');
        else await assert.rejects(p, (e: unknown) => e !== 'only');
      }
    }
  });

  it('a predicate decides alone, whatever the outcome', async () => {
    const seen: unknown[] = [];
    const fb = fallback({
      value: 0,
      on: (e) => {
        seen.push(e);
        return e instanceof TimeoutError;
      },
    });
    const t = new TimeoutError(1);
    assert.equal(await fb.execute(() => Promise.reject(t)), 0);
    await assert.rejects(
      fb.execute(() => Promise.reject(open())),
      CircuitOpenError,
    );
    assert.equal(seen[0], t);
    assert.equal(seen.length, 2);
  });

  it('no event when the error is rethrown', async () => {
    const fb = fallback({ value: 0, on: ['open'] });
    let events = 0;
    fb.on('fallback', () => events++);
    await assert.rejects(
      fb.execute(() => Promise.reject(new Error('x'))),
      /x/,
    );
    const lg = fallback({ lastGood: { ttlMs: 10 }, clock: new TestClock() });
    lg.on('fallback', () => events++);
    await assert.rejects(
      lg.execute(() => Promise.reject(new Error('y'))),
      /y/,
    );
    assert.equal(events, 0);
  });

  it('a caller abort is rethrown even when fn fails with something else', async () => {
    const fb = fallback({ value: 1 });
    const ac = new AbortController();
    await assert.rejects(
      fb.execute(() => {
        ac.abort(new Error('mine'));
        return Promise.reject(new Error('fn saw the abort'));
      }, ac.signal),
      /fn saw the abort/,
    );
    // The same error without the abort gets the fallback.
    assert.equal(await fb.execute(() => Promise.reject(new Error('x')), new AbortController().signal), 1);
  });
});

describe('fallback: last good value', () => {
  it('a value exactly ttlMs old is still served; one ms later it is not', async () => {
    const clock = new TestClock();
    const fb = fallback<number>({ lastGood: { ttlMs: 100 }, clock });
    await fb.execute(() => 1);
    clock.advance(100);
    assert.equal(await fb.execute(() => Promise.reject(new Error('down'))), 1);
    clock.advance(1);
    await assert.rejects(
      fb.execute(() => Promise.reject(new Error('down'))),
      /down/,
    );
  });

  it('a ttlMs of 0 serves only a value stored at the same instant', async () => {
    const clock = new TestClock();
    const fb = fallback<number>({ lastGood: { ttlMs: 0 }, clock });
    await fb.execute(() => 1);
    assert.equal(await fb.execute(() => Promise.reject(new Error('down'))), 1);
    clock.advance(1);
    await assert.rejects(
      fb.execute(() => Promise.reject(new Error('down'))),
      /down/,
    );
  });

  it('storing a key again refreshes its age and its place in the eviction order', async () => {
    const clock = new TestClock();
    const fb = fallback<number>({ lastGood: { ttlMs: 1_000, maxSize: 2 }, clock });
    const fail = () => Promise.reject(new Error('gone'));
    await fb.forKey('a').execute(() => 1);
    await fb.forKey('b').execute(() => 2);
    clock.advance(600);
    await fb.forKey('a').execute(() => 10); // a is now the most recently stored
    await fb.forKey('c').execute(() => 3); // evicts b, not a
    await assert.rejects(fb.forKey('b').execute(fail), /gone/);
    clock.advance(600); // a was stored 600 ms ago: fresh
    assert.equal(await fb.forKey('a').execute(fail), 10);
    assert.equal(await fb.forKey('c').execute(fail), 3);
    // maxSize keys fit exactly.
    const one = fallback<number>({ lastGood: { ttlMs: 1_000, maxSize: 1 }, clock });
    await one.forKey('x').execute(() => 7);
    assert.equal(await one.forKey('x').execute(fail), 7);
  });

  it('a failure neither replaces nor erases the last good value', async () => {
    const clock = new TestClock();
    const fb = fallback<number>({ lastGood: { ttlMs: 1_000 }, clock });
    await fb.execute(() => 1);
    await fb.execute(() => Promise.reject(new Error('x')));
    clock.advance(1_000);
    assert.equal(await fb.execute(() => Promise.reject(new Error('x'))), 1);
  });
});
