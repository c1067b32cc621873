/**
 * The config's `breaker` block as tripswitch `circuitBreaker()` options: the YAML uses the
 * library's own names, so this only picks the fields and adds the cluster's name and clock.
 * @module
 */
import type { CircuitBreakerOptions, Clock } from 'tripswitch';
import type { BreakerConfig } from './schema.js';

/**
 * The config's breaker block as tripswitch circuitBreaker() options (the same names).
 * @example
 * ```ts
 * const breaker = circuitBreaker(breakerOptions('payments', { trip: { kind: 'consecutive', threshold: 5 } }, systemClock));
 * ```
 */
export function breakerOptions(
  name: string,
  b: BreakerConfig | undefined,
  clock: Clock,
): CircuitBreakerOptions {
  const opts: CircuitBreakerOptions = { name, clock };
  if (b?.trip) opts.trip = b.trip as CircuitBreakerOptions['trip'];
  if (b?.openDuration !== undefined) opts.openDuration = b.openDuration;
  if (b?.halfOpen) opts.halfOpen = b.halfOpen;
  if (b?.eagerHalfOpen !== undefined) opts.eagerHalfOpen = b.eagerHalfOpen;
  return opts;
}
