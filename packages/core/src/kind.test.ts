import assert from 'node:assert/strict';
import { it } from 'node:test';
import { bulkhead, circuitBreaker, fallback, rateLimiter, retry, timeout, wrap } from './index.js';

it('every policy names its kind, on the prototype (no per-instance field)', () => {
  const cases = [
    [circuitBreaker(), 'breaker'],
    [retry(), 'retry'],
    [timeout({ ms: 1 }), 'timeout'],
    [bulkhead({ maxConcurrent: 1 }), 'bulkhead'],
    [rateLimiter({ rate: 1 }), 'rateLimiter'],
    [fallback({ value: 0 }), 'fallback'],
    [fallback({ lastGood: { ttlMs: 1 } }).forKey('k'), 'fallback'],
    [wrap(retry(), timeout({ ms: 1 })), 'wrap'],
  ] as const;
  for (const [policy, kind] of cases) {
    assert.equal(policy.kind, kind);
    assert.equal(Object.hasOwn(policy, 'kind'), false, `${kind}: kind is an own property`);
  }
});
