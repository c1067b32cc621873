/**
 * tripswitch: circuit breakers and the policies that go with them.
 * @module
 */
export { type Clock, type TimerHandle, systemClock } from './clock.js';
export {
  BulkheadRejectedError,
  type CircuitOpenDetails,
  CircuitOpenError,
  ErrorCodes,
  InvalidOptionError,
  isBulkheadRejectedError,
  isCircuitOpenError,
  isInvalidOptionError,
  isRateLimitedError,
  isTimeoutError,
  RateLimitedError,
  isWriteQueueClosedError,
  isWriteQueueFullError,
  TimeoutError,
  TripswitchError,
  WriteQueueClosedError,
  WriteQueueFullError,
} from './errors.js';
export type { Subscription } from './emitter.js';
export { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
export {
  type BreakerContext,
  type BreakerEvents,
  type BreakerHandle,
  type BreakerSnapshot,
  type BreakerStats,
  type BreakerStore,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  circuitBreaker,
  type ErrorClass,
  type HalfOpenOptions,
  type OpenDurationBackoff,
  type Permit,
  type StoreSession,
} from './breaker.js';
export type {
  ConsecutiveTripOptions,
  CountTripOptions,
  CustomTripOptions,
  TimeTripOptions,
  TripCounts,
  TripOptions,
  WindowSnapshot,
} from './trip-rules.js';
export {
  type BreakerListing,
  type BreakerRegistry,
  type BreakerRegistryEvents,
  type BreakerRegistryOptions,
  breakerRegistry,
} from './registry.js';
export { type MethodDecorator, withBreaker } from './decorator.js';
export { breakerChannels } from './diagnostics.js';
export { type TimeoutEvents, type TimeoutOptions, type TimeoutPolicy, timeout } from './timeout.js';
export {
  type Backoff,
  constantBackoff,
  decorrelatedJitterBackoff,
  type ExponentialBackoffOptions,
  exponentialBackoff,
  fullJitterBackoff,
} from './backoff.js';
export {
  type RetryBudget,
  type RetryBudgetOptions,
  type RetryContext,
  type RetryEvents,
  type RetryOptions,
  type RetryPolicy,
  retry,
  retryBudget,
} from './retry.js';
export {
  type BulkheadEvents,
  type BulkheadOptions,
  type BulkheadPolicy,
  type BulkheadStats,
  bulkhead,
} from './bulkhead.js';
export {
  type AdaptiveLimiterEvents,
  type AdaptiveLimiterOptions,
  type AdaptiveLimiterPolicy,
  type AdaptiveLimiterStats,
  adaptiveLimiter,
  ConcurrencyLimitError,
  isConcurrencyLimitError,
} from './adaptive-limiter.js';
export {
  type HedgeContext,
  type HedgeEvents,
  type HedgeOptions,
  type HedgePolicy,
  type HedgeStats,
  hedge,
} from './hedge.js';
export {
  type RateLimiterEvents,
  type RateLimiterOptions,
  type RateLimiterPolicy,
  rateLimiter,
} from './rate-limiter.js';
export {
  type FallbackEvents,
  type FallbackOptions,
  type FallbackOutcome,
  type FallbackPolicy,
  fallback,
} from './fallback.js';
export {
  type AnyPolicy,
  type ContextOf,
  type FallbackResultOf,
  type WrappedContext,
  type WrappedPolicy,
  wrap,
} from './wrap.js';
export {
  memoryWriteStore,
  type PendingWrite,
  type QueuedWrite,
  type WriteContext,
  type WriteQueue,
  type WriteQueueEvents,
  type WriteQueueOptions,
  type WriteQueueStore,
  type WriteResult,
  writeQueue,
} from './write-queue.js';
export { logStateChanges, type StateChangeLogger } from './logging.js';
export { rejectUnknownKeys, type Validator, validator } from './validate.js';
export { ReplayPacing } from './replay-pacing.js';
export {
  adaptiveLimiterRejectionReasons,
  bulkheadRejectionReasons,
  chaosKinds,
  fallbackOutcomes,
  isWriteQueue,
  type PolicyKind,
  policyKind,
  retryGiveUpReasons,
  writeQueueStoreOperations,
} from './policy-kind.js';
