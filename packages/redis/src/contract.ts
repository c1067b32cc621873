/**
 * The store contract, as the core package declares it (docs/architecture.md).
 *
 * @module
 */
export type { BreakerHandle, BreakerStore, CircuitState, StoreSession } from 'tripswitch';
