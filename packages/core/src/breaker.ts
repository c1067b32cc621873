/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
/**
 * The circuit breaker: the public entry of its modules, re-exporting what the rest of the package
 * (and `index.ts`) imports from here.
 *
 * One job per module:
 * - `breaker-api.ts`: the `CircuitBreaker` interface, `Permit`, `BreakerContext` (types only);
 * - `breaker-core.ts`: the state machine (admission, `execute()` and permits, outcomes,
 *   transitions and timers, manual states), `circuitBreaker()`;
 * - `breaker-options.ts`: the option types with their defaults, and their validation;
 * - `breaker-half-open.ts`: the open/half-open episode, the probe sample and its verdict, waiters;
 * - `breaker-events.ts`: the event payloads and their dispatch (listeners, diagnostics_channel);
 * - `breaker-store.ts`: the shared-store contract and the guarded calls into a session;
 * - `breaker-snapshot.ts`: `stats()` and `toJSON()` shapes, and reading `initialState`;
 * - `breaker-state.ts`: the state names.
 *
 * @module
 */
export type { BreakerContext, CircuitBreaker, Permit } from './breaker-api.js';
export { circuitBreaker, isIdleBreaker } from './breaker-core.js';
export type { BreakerEvents } from './breaker-events.js';
export type {
  CircuitBreakerOptions,
  ErrorClass,
  HalfOpenOptions,
  OpenDurationBackoff,
} from './breaker-options.js';
export type { BreakerSnapshot, BreakerStats } from './breaker-snapshot.js';
export type { CircuitState } from './breaker-state.js';
export type { BreakerHandle, BreakerStore, StoreSession } from './breaker-store.js';
