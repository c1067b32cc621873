/**
 * The breaker's state names, shared by the modules of the breaker (`breaker-*.ts`).
 *
 * The numeric codes the hot path compares stay in `breaker-core.ts` as module-local constants: an
 * imported binding is a load from a cell on every read, a local `const` is folded into the code.
 * This list is indexed by those codes, so its order is theirs.
 *
 * @module
 */

/**
 * Every state a breaker can be in. `isolated`, `disabled` and `metrics-only` are set by hand.
 *
 * @example
 * ```ts
 * if (breaker.state === 'open') console.warn(`retry after ${breaker.nextAttemptAt}`);
 * ```
 */
export type CircuitState = 'closed' | 'open' | 'half-open' | 'isolated' | 'disabled' | 'metrics-only';

/**
 * @internal The state names by numeric code (closed 0, disabled 1, metrics-only 2, half-open 3,
 * open 4, isolated 5: the three that admit every call first, so the hot path tests `< HALF`).
 * Also the order `initialState.state`'s error message lists them in.
 */
export const stateNames: readonly CircuitState[] = [
  'closed',
  'disabled',
  'metrics-only',
  'half-open',
  'open',
  'isolated',
];
