/**
 * The breaker's side of a shared store (for example `@tripswitch/redis`): the contract
 * ({@link BreakerStore}, {@link BreakerHandle}, {@link StoreSession}) and the glue that calls a
 * session on the breaker's behalf.
 *
 * Every call into a session is guarded: a store that throws must not fail the call that caused
 * it, nor keep the breaker open or hold its calls forever. Remote updates come in through
 * `BreakerHandle.applyRemote`, which the state machine implements (`breaker-core.ts`).
 *
 * @module
 */
import type { BreakerSnapshot } from './breaker-snapshot.js';
import type { CircuitState } from './breaker-state.js';
import type { Validator } from './validate.js';

/**
 * Shared state for breakers (see docs/architecture.md).
 *
 * @example
 * ```ts
 * const payments = circuitBreaker({ name: 'payments', store: redisStore({ url }) });
 * ```
 */
export interface BreakerStore {
  attach(handle: BreakerHandle): StoreSession;
}

/**
 * What a breaker shows its store.
 *
 * @example
 * ```ts
 * // inside a store
 * attach(handle) { handle.applyRemote({ state: 'open', openUntil: Date.now() + 30_000, reason: 'remote' }); }
 * ```
 */
export interface BreakerHandle {
  readonly name: string;
  readonly state: CircuitState;
  snapshot(): BreakerSnapshot;
  /** Applies a state decided elsewhere, without publishing it back to the store. */
  applyRemote(update: { state: CircuitState; openUntil?: number; reason: string }): void;
  /** The open period (backoff included) the breaker would use for its next trip. */
  openDurationMs?(): number;
}

/**
 * A breaker's link to its store.
 *
 * @example
 * ```ts
 * attach: (h) => ({ onTransition: (e) => publish(h.name, e), detach: () => {} })
 * ```
 */
export interface StoreSession {
  /** A local transition happened; publish it. `manual` is true for isolate/close/reset/metricsOnly. */
  onTransition(event: {
    from: CircuitState;
    to: CircuitState;
    reason: string;
    openUntil?: number;
    manual?: boolean;
  }): void;
  /** Every recorded outcome (for fleet-wide counting); synchronous and cheap. */
  onOutcome?(outcome: 'success' | 'failure' | 'slow-success' | 'slow-failure'): void;
  /** Asked before open -> half-open; false keeps the breaker open (asked again on the next call). */
  requestProbe?(): boolean;
  /**
   * Called by `execute()` when `requestProbe()` said false: resolves once the store has decided
   * (for a shared store, when the fleet-wide probe permit arrived or was refused), after which the
   * call asks `requestProbe()` once more. Lets the first call after the open period become the
   * probe instead of being rejected while the permit is fetched, which matters for a quiet
   * service whose calls are farther apart than a permit is kept. Must settle within a bounded
   * time and never reject.
   */
  awaitProbe?(): Promise<unknown>;
  /**
   * Until the store has read the shared state once (a process started while the fleet's breaker
   * is open must not admit calls before it knows), a promise that settles when it has, or when
   * the store gave up waiting (bounded; never rejects); then `undefined` for good. `execute()`
   * waits for it, racing the caller's signal, before it decides; a permit (`tryAcquire()`)
   * cannot wait and decides on the local state. Asked on each call until it answers `undefined`.
   */
  untilSynced?(): Promise<unknown> | undefined;
  detach(): void;
}

/**
 * @internal Checks the `store` option and attaches the breaker to it (the last step of the
 * constructor: a store must not see a breaker whose other options are bad). Throws
 * `InvalidOptionError` for a store that is not one, for an unnamed breaker (unnamed breakers
 * would all be 'default' on the store and share one state), and for a session that is not one.
 */
export function attachStore(
  v: Validator,
  raw: unknown,
  rawName: unknown,
  handle: BreakerHandle,
): StoreSession {
  const store = raw as BreakerStore;
  if (typeof store !== 'object' || store === null || typeof store.attach !== 'function')
    v.fail('store', 'a BreakerStore with attach()', raw);
  if (rawName === undefined)
    v.fail('name', 'a name when store is given (breakers on one store are told apart by name)', rawName);
  const session = store.attach(handle);
  if (typeof session !== 'object' || session === null || typeof session.onTransition !== 'function')
    v.fail('store', 'a BreakerStore whose attach() returns a StoreSession', raw);
  return session;
}

/** @internal The store's first read, still on its way; `undefined` once done (or the store broke). */
export function untilSynced(session: StoreSession | undefined): Promise<unknown> | undefined {
  try {
    return session?.untilSynced?.();
  } catch {
    return undefined; // a broken store must not hold calls
  }
}

/** @internal The store's decision on a probe permit it is fetching; never rejects. */
export function awaitProbe(session: StoreSession): Promise<unknown> {
  try {
    return Promise.resolve(session.awaitProbe!());
  } catch {
    return Promise.resolve();
  }
}

/** @internal Whether the store lets this instance move open -> half-open (yes without a store). */
export function probeAllowed(session: StoreSession | undefined): boolean {
  if (session === undefined || session.requestProbe === undefined) return true;
  try {
    return session.requestProbe() !== false;
  } catch {
    return true; // a broken store must not keep the breaker open forever
  }
}

/** @internal Tells the store about a recorded outcome (for fleet-wide counting). */
export function publishOutcome(session: StoreSession, failure: boolean, slow: boolean): void {
  if (session.onOutcome === undefined) return;
  try {
    session.onOutcome(failure ? (slow ? 'slow-failure' : 'failure') : slow ? 'slow-success' : 'success');
  } catch {
    // the store's problem, not the caller's
  }
}

/** @internal Publishes a local transition (`openUntil` only when the breaker opened). */
export function publishTransition(
  session: StoreSession,
  from: CircuitState,
  to: CircuitState,
  reason: string,
  openUntil: number | undefined,
  manual: boolean,
): void {
  try {
    session.onTransition(
      openUntil === undefined ? { from, to, reason, manual } : { from, to, reason, openUntil, manual },
    );
  } catch {
    // a failing store must not break the call that caused the transition
  }
}

/** @internal Detaches from the store, ignoring its errors (the breaker is leaving). */
export function detach(session: StoreSession): void {
  try {
    session.detach();
  } catch {
    // ignore: we are leaving
  }
}

/**
 * @internal Resolves when `p` settles (either way), or rejects with the signal's reason if it
 * aborts first; the abort listener is removed in both cases. How a call waits for the store.
 */
export function untilSettledOrAborted(p: Promise<unknown>, signal: AbortSignal | undefined): Promise<void> {
  const settled = p.then(
    () => {},
    () => {},
  );
  if (signal === undefined) return settled;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    settled.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
  });
}
