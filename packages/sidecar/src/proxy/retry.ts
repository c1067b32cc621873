/**
 * The retry filter: whether an attempt's outcome is retried, and when. A retry needs the route's
 * `retry` policy with attempts left, a replayable body (none, or read into memory first), an
 * idempotent method (or `retry_non_idempotent`), a client still there, an outcome in `retry_on`,
 * and a retry slot of the priority's limiter (`max_retries` or Envoy's `retry_budget`: retries in
 * flight). The delay is tripswitch's full-jitter exponential backoff (Envoy's algorithm), computed
 * by the route's `Backoff` with the sidecar's `random`; timers go through the cluster's clock.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { FailKind } from './errors.js';
import { IDEMPOTENT } from './http.js';
import type { Limiter } from './limits.js';
import type { CompiledRoute } from './route.js';

/** The request state this filter reads and fills in. */
export interface RetryState {
  readonly req: IncomingMessage;
  readonly route: CompiledRoute;
  readonly lim: Limiter;
  readonly hasBody: boolean;
  readonly body: Buffer | undefined;
  /** Retries made so far. */
  attempt: number;
  /** The delay before the previous retry (the backoff's `previous`). */
  lastDelay: number;
  /** A retry slot of `lim` is held (from the decision until the retried attempt ends). */
  retryHeld: boolean;
  /** The client is gone or answered: nothing more is tried. */
  readonly ended: boolean;
  /** Randomness for the backoff's jitter. */
  random(): number;
  /** Sends the next attempt. */
  send(): void;
}

function retryable(x: RetryState): boolean {
  const r = x.route.retry;
  return (
    r !== undefined &&
    x.attempt < r.attempts &&
    (!x.hasBody || x.body !== undefined) &&
    (r.nonIdempotent || IDEMPOTENT.has(x.req.method!)) &&
    !x.ended
  );
}

/** True (and a retry slot taken) when an upstream response of `status` is retried. */
export function retryOnStatus(x: RetryState, status: number): boolean {
  return retryable(x) && x.route.retry!.statuses.has(status) && x.lim.tryRetry();
}

/** True (and a retry slot taken) when an upstream failure of `kind` is retried. */
export function retryOnFailure(x: RetryState, kind: FailKind): boolean {
  if (!retryable(x)) return false;
  const r = x.route.retry!;
  const on = kind === 'connect-failure' || kind === 'tls' ? r.connectFailure : kind === 'reset' && r.reset;
  return on && x.lim.tryRetry();
}

/** Gives the retry slot back once the retried attempt ended (or the request did). */
export function releaseRetry(x: RetryState): void {
  if (!x.retryHeld) return;
  x.retryHeld = false;
  x.lim.retryDone();
}

/** Holds the retry slot taken by the decision and sends the next attempt after the backoff. */
export function scheduleRetry(x: RetryState): void {
  x.retryHeld = true;
  x.attempt++;
  const cluster = x.route.cluster;
  cluster.counters.retries++;
  const delay = x.route.retry!.backoff.delay(x.attempt, x.lastDelay, x.random);
  x.lastDelay = delay;
  if (delay < 1) x.send();
  else cluster.clock.setTimeout(() => x.send(), delay);
}
