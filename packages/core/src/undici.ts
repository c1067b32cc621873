/**
 * `tripswitch/undici`: a circuit-breaker interceptor for undici's `Dispatcher.compose`.
 *
 * Written against undici 7's handler API (`onRequestStart`, `onResponseStart`, `onResponseData`,
 * `onResponseEnd`, `onResponseError`): `compose` wraps legacy handlers into that shape before they
 * reach an interceptor. undici is not imported: the types below are structural, so tripswitch keeps
 * zero runtime dependencies and works with whichever undici copy the application uses.
 *
 * @module
 */
import type { CircuitBreakerOptions, Permit } from './breaker.js';
import type { Clock } from './clock.js';
import { type BreakerRegistry, breakerRegistry } from './registry.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * The part of undici's `DispatchController` the interceptor uses (typed structurally, so core
 * does not depend on undici).
 *
 * @example
 * ```ts
 * onResponseStart(controller: DispatchControllerLike, status: number) { if (status >= 500) controller.abort(new Error('5xx')); }
 * ```
 */
export interface DispatchControllerLike {
  readonly aborted: boolean;
  readonly paused: boolean;
  readonly reason: Error | null;
  abort(reason: Error): void;
  pause(): void;
  resume(): void;
}

/**
 * undici 7's `DispatchHandler` (new-style callbacks).
 *
 * @example
 * ```ts
 * const handler: DispatchHandlerLike = { onResponseError: (_c, err) => log.warn(err) };
 * ```
 */
export interface DispatchHandlerLike {
  onRequestStart?(controller: DispatchControllerLike, context: unknown): void;
  onRequestUpgrade?(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: unknown,
    socket: unknown,
  ): void;
  onResponseStart?(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: unknown,
    statusMessage?: string,
  ): void;
  onResponseData?(controller: DispatchControllerLike, chunk: Uint8Array): void;
  onResponseEnd?(controller: DispatchControllerLike, trailers: unknown): void;
  onResponseError?(controller: DispatchControllerLike, error: Error): void;
}

/**
 * undici's `Dispatcher.dispatch` as an interceptor sees it.
 *
 * @example
 * ```ts
 * const logging = (dispatch: DispatchLike): DispatchLike => (opts, handler) => { log.debug(opts.path); return dispatch(opts, handler); };
 * ```
 */
// biome-ignore lint/suspicious/noExplicitAny: undici's DispatchOptions/DispatchHandler are accepted structurally.
export type DispatchLike = (opts: any, handler: any) => boolean;

/**
 * Options of {@link breakerInterceptor}.
 *
 * @example
 * ```ts
 * breakerInterceptor({ breaker: { trip: { kind: 'consecutive', threshold: 3 } } });
 * ```
 */
export interface BreakerInterceptorOptions {
  /** Where the per-origin breakers live. @default a new breakerRegistry() */
  registry?: BreakerRegistry;
  /** Options for each origin's breaker, used when it is created. @default {} */
  breaker?: Omit<CircuitBreakerOptions, 'name'>;
  /** Which response statuses count as failures. @default (status) => status >= 500 || status === 429 */
  isFailureStatus?: (status: number) => boolean;
  /** Clock for the default registry. @default systemClock */
  clock?: Clock;
}

/**
 * An undici interceptor with its registry.
 *
 * @example
 * ```ts
 * const i: BreakerInterceptor = breakerInterceptor();
 * i.registry.list();
 * ```
 */
export interface BreakerInterceptor {
  <D extends DispatchLike>(dispatch: D): D;
  readonly registry: BreakerRegistry;
}

const OWNER = 'breakerInterceptor';
const defaultIsFailure = (s: number) => s >= 500 || s === 429;

function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e !== null && typeof e === 'object' && (e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED');
}

/** Forwards every callback, settling the breaker permit on the response head or the error. */
class BreakerHandler implements DispatchHandlerLike {
  #permit: Permit | undefined;
  readonly #h: DispatchHandlerLike;
  readonly #isFailure: (s: number) => boolean;

  constructor(handler: DispatchHandlerLike, permit: Permit, isFailure: (s: number) => boolean) {
    this.#h = handler;
    this.#permit = permit;
    this.#isFailure = isFailure;
  }

  onRequestStart(controller: DispatchControllerLike, context: unknown): void {
    this.#h.onRequestStart?.(controller, context);
  }

  onRequestUpgrade(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: unknown,
    socket: unknown,
  ): void {
    this.#settle(undefined);
    this.#h.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(
    controller: DispatchControllerLike,
    statusCode: number,
    headers: unknown,
    statusMessage?: string,
  ): void {
    // 1xx informational heads come before the real one; judge the final status.
    if (statusCode >= 200)
      this.#settle(this.#isFailure(statusCode) ? new Error(`HTTP ${statusCode}`) : undefined);
    this.#h.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: DispatchControllerLike, chunk: Uint8Array): void {
    this.#h.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: DispatchControllerLike, trailers: unknown): void {
    this.#settle(undefined);
    this.#h.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: DispatchControllerLike, error: Error): void {
    const p = this.#permit;
    if (p !== undefined) {
      this.#permit = undefined;
      // The caller's own abort says nothing about the origin's health.
      if (isAbort(error)) p.neutral();
      else p.failure(error);
    }
    this.#h.onResponseError?.(controller, error);
  }

  #settle(failure: Error | undefined): void {
    const p = this.#permit;
    if (p === undefined) return;
    this.#permit = undefined;
    if (failure === undefined) p.success();
    else p.failure(failure);
  }
}

/** A controller for a request that never reached the network. */
class RejectedController implements DispatchControllerLike {
  readonly aborted = true;
  readonly paused = false;
  readonly reason: Error;
  constructor(reason: Error) {
    this.reason = reason;
  }
  abort(): void {}
  pause(): void {}
  resume(): void {}
}

function originKey(origin: unknown): string {
  if (typeof origin === 'string') return origin.endsWith('/') ? origin.slice(0, -1) : origin;
  if (origin instanceof URL) return origin.origin;
  return String(origin);
}

/**
 * An undici interceptor that puts each origin behind its own circuit breaker. Network errors and
 * failure statuses (5xx, 429 by default) count as failures, judged when the response head
 * arrives; while an origin's breaker is open its requests fail with `CircuitOpenError` without
 * touching the network. Works for `undici.request`, `undici.fetch` and anything else dispatching
 * through the composed agent (`setGlobalDispatcher` covers the application's undici calls).
 *
 * @example
 * ```ts
 * import { Agent, setGlobalDispatcher } from 'undici';
 * import { breakerInterceptor } from 'tripswitch/undici';
 * setGlobalDispatcher(new Agent().compose(breakerInterceptor({ breaker: { openDuration: 10_000 } })));
 * ```
 */
export function breakerInterceptor(options: BreakerInterceptorOptions = {}): BreakerInterceptor {
  const v = validator(OWNER);
  const o = v.object('options', options);
  rejectUnknownKeys(OWNER, o, ['registry', 'breaker', 'isFailureStatus', 'clock']);
  if (o.registry !== undefined && typeof (o.registry as BreakerRegistry).get !== 'function')
    v.fail('registry', 'a BreakerRegistry', o.registry);
  const clock = v.clock('clock', o.clock);
  const registry =
    (o.registry as BreakerRegistry | undefined) ?? breakerRegistry(clock === undefined ? {} : { clock });
  const breakerOpts = v.optionalObject('breaker', o.breaker) as
    | Omit<CircuitBreakerOptions, 'name'>
    | undefined;
  const isFailure =
    v.optionalFunction<(s: number) => boolean>('isFailureStatus', o.isFailureStatus) ?? defaultIsFailure;

  const interceptor = <D extends DispatchLike>(dispatch: D): D =>
    ((opts: { origin?: unknown }, handler: DispatchHandlerLike): boolean => {
      const breaker = registry.get(originKey(opts.origin), breakerOpts);
      let permit: Permit;
      try {
        permit = breaker.acquire();
      } catch (err) {
        // Delivered asynchronously, as a network error would be.
        queueMicrotask(() => handler.onResponseError?.(new RejectedController(err as Error), err as Error));
        return true;
      }
      const wrapped = new BreakerHandler(handler, permit, isFailure);
      try {
        return dispatch(opts, wrapped);
      } catch (err) {
        // Thrown synchronously: bad arguments, not the origin's health.
        permit.neutral(err);
        throw err;
      }
    }) as D;
  return Object.assign(interceptor, { registry });
}
