import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BulkheadRejectedError,
  CircuitOpenError,
  fallback,
  isInvalidOptionError,
  TimeoutError,
} from './index.js';
import { TestClock } from './test-clock.js';

const open = () =>
  new CircuitOpenError({ breakerName: 'x', state: 'open', retryAt: undefined, retryAfter: undefined });

describe('fallback', () => {
  it('validates options', () => {
    assert.throws(
      () => fallback({}),
      (e: unknown) => isInvalidOptionError(e) && /exactly one of them, got "none"/.test(String(e)),
    );
    assert.throws(() => fallback({ value: 1, fn: () => 2 }), /exactly one/);
    assert.throws(() => fallback({ value: 1, on: ['opened' as 'open'] }), /option "on"/);
    assert.throws(() => fallback({ lastGood: { ttlMs: -1 } }), /"lastGood.ttlMs"/);
  });

  it('a static value on any failure, and passes successes through', async () => {
    const fb = fallback({ value: 'cached' });
    const events: string[] = [];
    fb.on('fallback', (e) => events.push(e.outcome));
    assert.equal(await fb.execute(() => 'live'), 'live');
    assert.equal(await fb.execute(() => Promise.reject(new Error('x'))), 'cached');
    assert.equal(await fb.execute(() => Promise.reject(open())), 'cached');
    assert.deepEqual(events, ['failure', 'open']);
  });

  it('a function of the error', async () => {
    const fb = fallback({ fn: (err) => `fallback for ${(err as Error).message}` });
    assert.equal(await fb.execute(() => Promise.reject(new Error('boom'))), 'fallback for boom');
  });

  it('`on` restricts the outcomes', async () => {
    const fb = fallback({ value: 0, on: ['open', 'timeout'] });
    assert.equal(await fb.execute(() => Promise.reject(open())), 0);
    assert.equal(await fb.execute(() => Promise.reject(new TimeoutError(5))), 0);
    await assert.rejects(
      fb.execute(() => Promise.reject(new BulkheadRejectedError(1, 0))),
      BulkheadRejectedError,
    );
    await assert.rejects(
      fb.execute(() => Promise.reject(new Error('plain'))),
      /plain/,
    );
    const pred = fallback({ value: 1, on: (e) => (e as Error).message === 'ok to hide' });
    assert.equal(await pred.execute(() => Promise.reject(new Error('ok to hide'))), 1);
    await assert.rejects(
      pred.execute(() => Promise.reject(new Error('other'))),
      /other/,
    );
  });

  it('never answers for the caller’s own abort', async () => {
    const fb = fallback({ value: 1 });
    const ac = new AbortController();
    ac.abort(new Error('mine'));
    await assert.rejects(
      fb.execute(() => Promise.reject(ac.signal.reason), ac.signal),
      /mine/,
    );
  });

  it('last good value per key within the TTL, bounded', async () => {
    const clock = new TestClock();
    const fb = fallback<number>({ lastGood: { ttlMs: 1_000, maxSize: 2 }, clock });
    const a = fb.forKey('a');
    assert.equal(await a.execute(() => 1), 1);
    assert.equal(await a.execute(() => Promise.reject(new Error('down'))), 1);
    await assert.rejects(
      fb.forKey('b').execute(() => Promise.reject(new Error('no b yet'))),
      /no b yet/,
    );
    clock.advance(1_001);
    await assert.rejects(
      a.execute(() => Promise.reject(new Error('stale'))),
      /stale/,
    );
    await a.execute(() => 2);
    await fb.forKey('b').execute(() => 3);
    await fb.forKey('c').execute(() => 4); // evicts a
    await assert.rejects(
      a.execute(() => Promise.reject(new Error('evicted'))),
      /evicted/,
    );
    assert.equal(await fb.forKey('c').execute(() => Promise.reject(new Error('x'))), 4);
  });
});
