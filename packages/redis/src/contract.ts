/**
 * The store contract from docs/architecture.md, restated structurally so this package compiles
 * against any tripswitch that honours it (TypeScript compares shapes, not declarations).
 *
 * @module
 */

/** Every state a tripswitch breaker can be in. */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated' | 'disabled' | 'metrics-only';

/** What a breaker shows its store. */
export interface BreakerHandle {
  readonly name: string;
  readonly state: CircuitState;
  snapshot(): unknown;
  /** Applies a state decided elsewhere, without publishing it back to the store. */
  applyRemote(update: { state: CircuitState; openUntil?: number; reason: string }): void;
}

/** A breaker's link to its store, returned by {@link BreakerStore.attach}. */
export interface StoreSession {
  /** A local transition happened; publish it. */
  onTransition(event: { from: CircuitState; to: CircuitState; reason: string; openUntil?: number }): void;
  /** Every recorded outcome (for fleet-wide counting). Synchronous and O(1). */
  onOutcome?(outcome: 'success' | 'failure' | 'slow-success' | 'slow-failure'): void;
  /** Asked when the breaker wants to move open -> half-open. false keeps it open. */
  requestProbe?(): boolean;
  detach(): void;
}

/** Shared state for breakers, passed to `circuitBreaker({ store })`. */
export interface BreakerStore {
  attach(handle: BreakerHandle): StoreSession;
}
