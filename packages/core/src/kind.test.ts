import assert from 'node:assert/strict';
import { it } from 'node:test';
import { chaosFault, chaosLatency } from './chaos/index.js';
import {
  adaptiveLimiter,
  type BulkheadEvents,
  bulkhead,
  bulkheadRejectionReasons,
  circuitBreaker,
  type FallbackOutcome,
  fallback,
  fallbackOutcomes,
  hedge,
  memoryWriteStore,
  policyKind,
  type RetryEvents,
  rateLimiter,
  retry,
  retryGiveUpReasons,
  timeout,
  wrap,
  writeQueue,
  type WriteQueueEvents,
  writeQueueStoreOperations,
} from './index.js';

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
    [hedge({ idempotent: true, delayMs: 1 }), 'hedge'],
    [adaptiveLimiter(), 'adaptiveLimiter'],
    [chaosFault({ rate: 0 }), 'chaos'],
    [chaosLatency({ rate: 0, latencyMs: 1 }), 'chaos'],
  ] as const;
  for (const [policy, kind] of cases) {
    assert.equal(policy.kind, kind);
    assert.equal(Object.hasOwn(policy, 'kind'), false, `${kind}: kind is an own property`);
    assert.equal(policyKind(policy), kind);
  }
  assert.equal(policyKind({ execute: async () => 1 }), undefined);
  assert.equal(policyKind({ execute: async () => 1, kind: 'other' }), undefined);
  assert.equal(policyKind({ kind: 'retry' }), undefined, 'no execute, not a policy');
  assert.equal(policyKind(null), undefined);
});

it('a write queue names its kind too, but is not a policy (no execute)', async () => {
  const q = writeQueue({ send: async () => 1, store: memoryWriteStore() });
  assert.equal(q.kind, 'writeQueue');
  assert.equal(Object.hasOwn(q, 'kind'), false, 'kind is an own property');
  assert.equal(policyKind(q), undefined);
  await q.close();
});

// Compile-time: each list names every member of its union (a new member breaks the build here).
type Missing<U, L extends readonly unknown[]> = Exclude<U, L[number]>;
const allGiveUps: Missing<RetryEvents['giveUp']['reason'], typeof retryGiveUpReasons> extends never
  ? true
  : false = true;
const allRejections: Missing<
  BulkheadEvents['rejected']['reason'],
  typeof bulkheadRejectionReasons
> extends never
  ? true
  : false = true;
const allOutcomes: Missing<FallbackOutcome, typeof fallbackOutcomes> extends never ? true : false = true;
const allStoreOps: Missing<
  WriteQueueEvents<unknown, unknown>['storeError']['operation'],
  typeof writeQueueStoreOperations
> extends never
  ? true
  : false = true;

it('the label lists are complete and frozen', () => {
  assert.ok(allGiveUps && allRejections && allOutcomes && allStoreOps);
  for (const list of [
    retryGiveUpReasons,
    bulkheadRejectionReasons,
    fallbackOutcomes,
    writeQueueStoreOperations,
  ]) {
    assert.ok(Object.isFrozen(list));
    assert.equal(new Set(list).size, list.length);
  }
});
