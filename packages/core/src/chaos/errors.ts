/**
 * The error a fault injection rejects with when no other is given.
 *
 * @module
 */
import { TripswitchError } from '../errors.js';

/** The stable code of {@link InjectedFaultError}. */
const CODE = 'ERR_CHAOS_FAULT';

/**
 * A failure injected by `chaosFault()` on purpose, so logs and dashboards can tell a game day's
 * faults from real ones.
 *
 * @example
 * ```ts
 * if (isInjectedFaultError(err)) log.info('chaos experiment fault');
 * ```
 */
export class InjectedFaultError extends TripswitchError {
  override readonly name = 'InjectedFaultError';
  readonly code = CODE;
  constructor(message = 'Fault injected by chaosFault()') {
    super(message);
  }
}

/**
 * True when `err` is an {@link InjectedFaultError} from any copy of tripswitch (checks the `code`).
 *
 * @example
 * ```ts
 * const isFailure = (err: unknown) => !isInjectedFaultError(err) || countInjected;
 * ```
 */
export function isInjectedFaultError(err: unknown): err is InjectedFaultError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === CODE;
}
