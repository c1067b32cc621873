/**
 * What metrics and dashboard add-ons need to recognise a policy and enumerate the labels its
 * events can carry, kept here so every add-on reads the same list.
 *
 * @module
 */
import type { AdaptiveLimiterEvents } from './adaptive-limiter.js';
import type { BulkheadEvents } from './bulkhead.js';
import type { ChaosKind } from './chaos/base.js';
import type { FallbackOutcome } from './fallback.js';
import type { RetryEvents } from './retry.js';
import type { WriteQueue, WriteQueueEvents } from './write-queue.js';

/**
 * The kind a tripswitch policy names in its `kind` property.
 *
 * @example
 * ```ts
 * const k: PolicyKind = retry().kind; // 'retry'
 * ```
 */
export type PolicyKind =
  | 'breaker'
  | 'wrap'
  | 'retry'
  | 'timeout'
  | 'bulkhead'
  | 'rateLimiter'
  | 'fallback'
  | 'hedge'
  | 'adaptiveLimiter'
  | 'chaos';

const KINDS: ReadonlySet<unknown> = new Set<PolicyKind>([
  'breaker',
  'wrap',
  'retry',
  'timeout',
  'bulkhead',
  'rateLimiter',
  'fallback',
  'hedge',
  'adaptiveLimiter',
  'chaos',
]);

/**
 * The kind of a tripswitch policy, or `undefined` for anything else (including look-alikes with
 * an `execute` but no known `kind`).
 *
 * @example
 * ```ts
 * import { policyKind, wrap, retry, timeout } from 'tripswitch';
 * policyKind(wrap(retry(), timeout({ ms: 500 }))); // 'wrap'
 * ```
 */
export function policyKind(p: unknown): PolicyKind | undefined {
  if (typeof p !== 'object' || p === null) return undefined;
  const o = p as { execute?: unknown; kind?: unknown };
  return typeof o.execute === 'function' && KINDS.has(o.kind) ? (o.kind as PolicyKind) : undefined;
}

/**
 * Every `reason` of a retry's `giveUp` event, for metrics that pre-create one series per reason.
 *
 * @example
 * ```ts
 * for (const reason of retryGiveUpReasons) counter.inc({ reason }, 0);
 * ```
 */
export const retryGiveUpReasons = Object.freeze([
  'max-attempts',
  'not-retryable',
  'budget',
  'circuit-open',
  'aborted',
] as const) satisfies readonly RetryEvents['giveUp']['reason'][];

/**
 * Every `reason` of a bulkhead's `rejected` event.
 *
 * @example
 * ```ts
 * for (const reason of bulkheadRejectionReasons) counter.inc({ reason }, 0);
 * ```
 */
export const bulkheadRejectionReasons = Object.freeze([
  'full',
  'queue-timeout',
] as const) satisfies readonly BulkheadEvents['rejected']['reason'][];

/**
 * Every `reason` of an adaptive limiter's `rejected` event.
 *
 * @example
 * ```ts
 * for (const reason of adaptiveLimiterRejectionReasons) counter.inc({ reason }, 0);
 * ```
 */
export const adaptiveLimiterRejectionReasons = Object.freeze([
  'full',
  'queue-timeout',
] as const) satisfies readonly AdaptiveLimiterEvents['rejected']['reason'][];

/**
 * Every kind of disturbance a chaos policy (`tripswitch/chaos`) can inject.
 *
 * @example
 * ```ts
 * for (const chaos of chaosKinds) counter.inc({ chaos }, 0);
 * ```
 */
export const chaosKinds = Object.freeze([
  'fault',
  'latency',
  'outcome',
  'behavior',
] as const) satisfies readonly ChaosKind[];

/**
 * Every outcome a fallback can answer for.
 *
 * @example
 * ```ts
 * for (const outcome of fallbackOutcomes) counter.inc({ outcome }, 0);
 * ```
 */
export const fallbackOutcomes = Object.freeze([
  'open',
  'timeout',
  'bulkhead',
  'rateLimited',
  'failure',
] as const) satisfies readonly FallbackOutcome[];

/**
 * True for a queue made by `writeQueue()`. A write queue has no `execute`, so {@link policyKind}
 * does not name it; add-ons recognise it by its `kind` and `on`.
 *
 * @example
 * ```ts
 * if (isWriteQueue(x)) x.on('dead', report);
 * ```
 */
export function isWriteQueue(x: unknown): x is WriteQueue<unknown, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as { kind?: unknown; on?: unknown };
  return o.kind === 'writeQueue' && typeof o.on === 'function';
}

/**
 * Every `operation` of a write queue's `storeError` event.
 *
 * @example
 * ```ts
 * for (const operation of writeQueueStoreOperations) counter.inc({ operation }, 0);
 * ```
 */
export const writeQueueStoreOperations = Object.freeze([
  'load',
  'remove',
  'close',
] as const) satisfies readonly WriteQueueEvents<unknown, unknown>['storeError']['operation'][];
