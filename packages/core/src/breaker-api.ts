/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
/**
 * The breaker's public contract: the {@link CircuitBreaker} interface callers program against,
 * its two-step {@link Permit} and the context `execute` passes. Types only; the implementation is
 * `breaker-core.ts`.
 *
 * @module
 */
import type { MethodDecorator } from './decorator.js';
import type { Subscription } from './emitter.js';
import type { Policy, PolicyContext } from './policy.js';
import type { BreakerEvents } from './breaker-events.js';
import type { BreakerSnapshot, BreakerStats } from './breaker-snapshot.js';
import type { CircuitState } from './breaker-state.js';
import type { BreakerHandle } from './breaker-store.js';

/**
 * What `execute` passes to `fn`.
 *
 * @example
 * ```ts
 * await breaker.execute(({ signal }) => fetch(url, { signal }), AbortSignal.timeout(2_000));
 * ```
 */
export type BreakerContext = PolicyContext;

/**
 * A two-step call: report how the work went, exactly once. Later reports are ignored.
 *
 * @example
 * ```ts
 * const permit = breaker.tryAcquire();
 * if (!permit) return fallback();
 * try { const r = await work(); permit.success(); return r; }
 * catch (err) { permit.failure(err); throw err; }
 * ```
 */
export interface Permit {
  /** The call succeeded. */
  success(): void;
  /** The call failed (counts as a failure whatever `isFailure` says). */
  failure(error?: unknown): void;
  /** The call counts as neither (e.g. cancelled by the caller); gives the slot back. */
  neutral(error?: unknown): void;
  /** True once one of the three was called. */
  readonly settled: boolean;
}

/**
 * A circuit breaker: a {@link Policy} that stops calling a failing dependency for a while.
 *
 * @example
 * ```ts
 * const breaker = circuitBreaker({ name: 'payments' });
 * const receipt = await breaker.execute(({ signal }) => charge(order, signal), req.signal);
 * ```
 */
export interface CircuitBreaker extends Policy<BreakerContext>, BreakerHandle {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'breaker';
  readonly name: string;
  readonly state: CircuitState;
  /** Epoch ms when a probe will be admitted, while open; `undefined` otherwise. */
  readonly nextAttemptAt: number | undefined;
  /** Runs `fn(ctx)`, or rejects with `CircuitOpenError` without calling it. */
  execute<T>(fn: (ctx: BreakerContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>;
  /** A function with the same parameters that runs `fn` through `execute`. */
  wrap<A extends unknown[], T>(fn: (...args: A) => PromiseLike<T> | T): (...args: A) => Promise<T>;
  /** A standard method decorator: `@breaker.protect async call() {}`. */
  readonly protect: MethodDecorator;
  /** The open period (backoff included) the next trip would use. */
  openDurationMs(): number;
  /** A permit, or `undefined` when the breaker rejects (no error is allocated). */
  tryAcquire(): Permit | undefined;
  /** A permit; throws `CircuitOpenError` when the breaker rejects. */
  acquire(): Permit;
  /** Forced open until `reset()` (or another manual state). */
  isolate(): void;
  /** Forced closed (state `disabled`): admits everything and never opens, until `reset()`. */
  forceClose(): void;
  /**
   * Forced closed: the old name of {@link CircuitBreaker.forceClose}.
   * @deprecated Use `forceClose()` (renamed in 0.2: `close()` read like `reset()`); removed in 0.3.
   */
  close(): void;
  /** Back to `closed` with clean counts. */
  reset(): void;
  /** Dry run: records and emits events, never rejects; emits `wouldOpen` when it would have opened. */
  metricsOnly(): void;
  stats(): BreakerStats;
  toJSON(): BreakerSnapshot;
  on<K extends keyof BreakerEvents>(event: K, listener: (e: BreakerEvents[K]) => void): Subscription;
  /** Detaches from the store and cancels timers. The breaker keeps working locally. */
  dispose(): void;
  [Symbol.dispose](): void;
}
