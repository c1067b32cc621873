/**
 * The breaker's events: their payloads, and their dispatch to the breaker's own listeners and to
 * `node:diagnostics_channel` (`tripswitch:breaker:*`).
 *
 * A payload is built only when someone listens on either side, and the callers test the cheap
 * "anyone at all?" condition before calling in, so an unobserved breaker pays one field read per
 * call. Those tests on the hot path (whether a call's duration is wanted, whether a rejection is
 * watched) stay in the breaker's own methods, exactly as before the split, so the hot path makes
 * no call it did not make then. These are plain functions of the emitter (not methods), so the
 * breaker's state stays in its private fields.
 *
 * @module
 */
import type { Clock } from './clock.js';
import { channels } from './diagnostics.js';
import type { Emitter } from './emitter.js';
import type { CircuitState } from './breaker-state.js';

/**
 * Events of a breaker (the same payloads go to `node:diagnostics_channel`).
 *
 * @example
 * ```ts
 * breaker.on('stateChange', ({ name, from, to, reason }) => log.info({ name, from, to, reason }));
 * ```
 */
export interface BreakerEvents {
  stateChange: { name: string; from: CircuitState; to: CircuitState; reason: string; at: number };
  success: { name: string; duration: number };
  failure: { name: string; error: unknown; duration: number };
  rejected: { name: string; state: CircuitState; retryAfter: number | undefined };
  neutral: { name: string; error: unknown; duration: number };
  /** In `metrics-only`, the trip rule would have opened the breaker (its window then restarts). */
  wouldOpen: { name: string; reason: string; at: number };
}

/** @internal A breaker's listeners; `undefined` while it has none (the lean path tests that). */
export type BreakerEmitter = Emitter<BreakerEvents> | undefined;

/** @internal Emits `success`, if anyone listens. */
export function emitSuccess(events: BreakerEmitter, name: string, duration: number): void {
  if (events?.has('success') !== true && !channels.success.hasSubscribers) return;
  const e = { name, duration };
  events?.emit('success', e);
  if (channels.success.hasSubscribers) channels.success.publish(e);
}

/** @internal Emits `failure`, if anyone listens. */
export function emitFailure(events: BreakerEmitter, name: string, error: unknown, duration: number): void {
  if (events?.has('failure') !== true && !channels.failure.hasSubscribers) return;
  const e = { name, error, duration };
  events?.emit('failure', e);
  if (channels.failure.hasSubscribers) channels.failure.publish(e);
}

/**
 * @internal Emits `neutral`, if anyone listens; the clock is read only then (`start` NaN: nothing
 * needed the call's duration when it was admitted, so it is reported as 0).
 */
export function emitNeutral(
  events: BreakerEmitter,
  name: string,
  error: unknown,
  start: number,
  clock: Clock,
): void {
  if (events?.has('neutral') !== true && !channels.neutral.hasSubscribers) return;
  const duration = !Number.isNaN(start) ? clock.now() - start : 0;
  const e = { name, error, duration };
  events?.emit('neutral', e);
  if (channels.neutral.hasSubscribers) channels.neutral.publish(e);
}

/** @internal Emits `rejected` (the caller has checked that someone listens). */
export function emitRejected(
  events: BreakerEmitter,
  name: string,
  state: CircuitState,
  retryAfter: number | undefined,
): void {
  const e = { name, state, retryAfter };
  events?.emit('rejected', e);
  if (channels.rejected.hasSubscribers) channels.rejected.publish(e);
}

/** @internal Emits `stateChange`, if anyone listens. */
export function emitStateChange(
  events: BreakerEmitter,
  name: string,
  from: CircuitState,
  to: CircuitState,
  reason: string,
  at: number,
): void {
  if (!events?.has('stateChange') && !channels.state.hasSubscribers) return;
  const e = { name, from, to, reason, at };
  events?.emit('stateChange', e);
  if (channels.state.hasSubscribers) channels.state.publish(e);
}

/** @internal Emits `wouldOpen` (breaker listeners only: it has no diagnostics channel). */
export function emitWouldOpen(events: BreakerEmitter, name: string, reason: string, clock: Clock): void {
  if (events?.has('wouldOpen')) events.emit('wouldOpen', { name, reason, at: clock.now() });
}
