/**
 * `@tripswitch/redis`: circuit-breaker state shared by every instance of a service, on Redis.
 *
 * @example
 * ```ts
 * import { circuitBreaker } from 'tripswitch';
 * import { redisStore } from '@tripswitch/redis';
 *
 * const store = redisStore({ url: 'redis://:secret@127.0.0.1:6379' });
 * const breaker = circuitBreaker({ name: 'inventory', store });
 * ```
 * @module
 */
export type { BreakerHandle, BreakerStore, CircuitState, StoreSession } from './contract.js';
export {
  type FleetRule,
  type RedisStore,
  type RedisStoreEvents,
  type RedisStoreOptions,
  redisStore,
  type StoreLogger,
} from './store.js';
export { type RedisWriteStoreOptions, redisWriteStore } from './write-store.js';
export {
  type RedisOutbox,
  type RedisOutboxEvents,
  type RedisOutboxOptions,
  redisOutbox,
} from './outbox.js';
