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
  TimeoutError,
  TripswitchError,
} from './errors.js';
export type { Subscription } from './emitter.js';
export { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
