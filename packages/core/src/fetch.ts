/**
 * `tripswitch/fetch`: `fetch` with one circuit breaker per origin, a timeout per attempt and
 * retries of idempotent requests.
 *
 * @module
 */
import type { CircuitBreakerOptions } from './breaker.js';
import { type Clock, systemClock } from './clock.js';
import { TripswitchError } from './errors.js';
import { type BreakerRegistry, breakerRegistry } from './registry.js';
import { type RetryOptions, type RetryPolicy, retry } from './retry.js';
import { type TimeoutPolicy, timeout } from './timeout.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * The fetch signature wrapped (the global one's parameters).
 *
 * @example
 * ```ts
 * const recorded: FetchLike = (input, init) => { calls.push(String(input)); return fetch(input, init); };
 * createFetch({ fetch: recorded });
 * ```
 */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/**
 * Options of {@link createFetch}.
 *
 * @example
 * ```ts
 * createFetch({ timeout: 2_000, retry: { maxAttempts: 2 }, breaker: { openDuration: 10_000 } });
 * ```
 */
export interface CreateFetchOptions {
  /** Where the per-origin breakers live (share it with metrics add-ons). @default a new breakerRegistry() */
  registry?: BreakerRegistry;
  /** Options for each origin's breaker, used when the registry creates it. @default {} */
  breaker?: Omit<CircuitBreakerOptions, 'name'>;
  /**
   * Deadline of each attempt until the response headers arrive, in ms (`false`: none). Reading
   * the body is bounded only by the caller's signal.
   * @default 10_000
   */
  timeout?: number | false;
  /**
   * Retries (`false`: none). Only idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) are
   * retried unless `retryNonIdempotent`; requests whose body is a stream are never retried.
   * @default { maxAttempts: 3 } (decorrelated jitter from 100 ms, Retry-After honoured up to 30 s)
   */
  retry?: Omit<RetryOptions, 'handleResult' | 'clock'> | false;
  /** Retry POST and PATCH too. @default false */
  retryNonIdempotent?: boolean;
  /** The fetch to call. @default globalThis.fetch */
  fetch?: FetchLike;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * The function returned by {@link createFetch}: fetch-compatible, plus its registry.
 *
 * @example
 * ```ts
 * const f: ResilientFetch = createFetch();
 * for (const { name, state } of f.registry.list()) console.log(name, state);
 * ```
 */
export interface ResilientFetch extends FetchLike {
  readonly registry: BreakerRegistry;
}

const OWNER = 'createFetch';
const KEYS = ['registry', 'breaker', 'timeout', 'retry', 'retryNonIdempotent', 'fetch', 'clock'] as const;
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/**
 * An attempt answered with a status that counts as a failure (5xx, 429). Internal: thrown inside
 * the breaker so it counts, and carries the response so the caller gets it after the last attempt.
 */
class HttpStatusFailure extends TripswitchError {
  override readonly name = 'HttpStatusFailure';
  readonly code = 'ERR_HTTP_STATUS';
  readonly response: Response;
  readonly retryAfter: number | undefined;
  constructor(response: Response, retryAfter: number | undefined) {
    super(`HTTP ${response.status}`);
    this.response = response;
    this.retryAfter = retryAfter;
  }
}

/**
 * Parses a Retry-After header (delta-seconds or an HTTP date) into ms from `now`.
 *
 * @example
 * ```ts
 * parseRetryAfter('120', Date.now()); // 120_000
 * ```
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function reusableBody(body: unknown): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof FormData
  );
}

/**
 * Makes a fetch with one circuit breaker per origin (`scheme://host:port`), a timeout per attempt
 * and retries.
 *
 * Network errors, timeouts, 5xx and 429 count as failures for the origin's breaker; other 4xx
 * (404) count as successes. Retry-After (seconds or a date) replaces the backoff delay. The
 * bodies of responses discarded for a retry are cancelled; the returned `Response` is the caller's
 * and its body untouched. After the last attempt a 5xx/429 response is returned as it is (not
 * thrown); a network error or `TimeoutError` is thrown; while the breaker is open the call rejects
 * with `CircuitOpenError` without touching the network.
 *
 * @example
 * ```ts
 * import { createFetch } from 'tripswitch/fetch';
 * const http = createFetch({ timeout: 2_000, breaker: { trip: { kind: 'consecutive', threshold: 5 } } });
 * const res = await http('https://api.example.com/users/1', { signal: req.signal });
 * ```
 */
export function createFetch(options: CreateFetchOptions = {}): ResilientFetch {
  const v = validator(OWNER);
  const o = v.object('options', options);
  rejectUnknownKeys(OWNER, o, KEYS);
  const clock = v.clock('clock', o.clock) ?? systemClock;
  if (o.registry !== undefined && typeof (o.registry as BreakerRegistry).get !== 'function')
    v.fail('registry', 'a BreakerRegistry', o.registry);
  const registry = (o.registry as BreakerRegistry | undefined) ?? breakerRegistry({ clock });
  const breakerOpts = v.optionalObject('breaker', o.breaker) as
    | Omit<CircuitBreakerOptions, 'name'>
    | undefined;
  const base = v.optionalFunction<FetchLike>('fetch', o.fetch) ?? ((i, init) => globalThis.fetch(i, init));
  const retryNonIdempotent = v.optionalBoolean('retryNonIdempotent', o.retryNonIdempotent) ?? false;
  let t: TimeoutPolicy | undefined;
  if (o.timeout !== false) {
    const ms =
      v.optionalNumber('timeout', o.timeout, { min: 0, exclusiveMin: true, max: 2_147_483_647 }) ?? 10_000;
    t = timeout({ ms, strategy: 'cooperative', clock });
  }
  let r: RetryPolicy | undefined;
  if (o.retry !== false) {
    const ro = v.optionalObject('retry', o.retry) ?? {};
    r = retry({ maxAttempts: 3, ...(ro as RetryOptions), clock });
    // A response dropped for a retry is never read: cancel its body so the connection is freed.
    r.on('retry', (e) => {
      if (e.error instanceof HttpStatusFailure) void e.error.response.body?.cancel().catch(() => {});
    });
  }

  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const isRequest = typeof Request !== 'undefined' && input instanceof Request;
    const url = isRequest ? (input as Request).url : String(input);
    const origin = new URL(url).origin;
    const method = (init?.method ?? (isRequest ? (input as Request).method : 'GET')).toUpperCase();
    const caller: AbortSignal | undefined =
      init?.signal ?? (isRequest ? (input as Request).signal : undefined);
    const breaker = registry.get(origin, breakerOpts);

    const once = (): Promise<Response> =>
      breaker.execute(async () => {
        let res: Response;
        if (t === undefined) res = await base(input, init);
        else
          res = await t.execute(({ signal }) => {
            const s = caller === undefined ? signal : AbortSignal.any([caller, signal]);
            return base(input, init === undefined ? { signal: s } : { ...init, signal: s });
          });
        if (res.status >= 500 || res.status === 429)
          throw new HttpStatusFailure(res, parseRetryAfter(res.headers.get('retry-after'), clock.now()));
        return res;
      }, caller);

    const retryable =
      r !== undefined &&
      (IDEMPOTENT.has(method) || retryNonIdempotent) &&
      reusableBody(init?.body) &&
      !(isRequest && (input as Request).body !== null);
    try {
      return retryable ? await r!.execute(once, caller) : await once();
    } catch (err) {
      if (err instanceof HttpStatusFailure) return err.response;
      throw err;
    }
  };
  return Object.assign(f, { registry });
}
