/**
 * The shape every policy shares, so `wrap()` can compose them.
 *
 * @module
 */

/**
 * What a policy hands to the function it runs. Policies add fields (a retry adds `attempt`), and
 * `wrap()` merges them into one typed context.
 *
 * @example
 * ```ts
 * await policy.execute(({ signal }: PolicyContext) => fetch(url, { signal }));
 * ```
 */
export interface PolicyContext {
  /**
   * Aborts when the caller's signal aborts or an enclosing policy gives up (a timeout). Policies
   * may create it lazily, so read it only if you use it.
   */
  readonly signal: AbortSignal;
}

/**
 * Anything with `execute(fn, signal?)`: a breaker, a retry, a timeout, a bulkhead, a fallback,
 * a rate limiter, or a `wrap()` of them.
 *
 * @typeParam C - the context this policy passes to `fn`.
 *
 * @example
 * ```ts
 * const p: Policy = timeout({ ms: 500 });
 * const body = await p.execute(({ signal }) => fetch(url, { signal }));
 * ```
 */
export interface Policy<C extends PolicyContext = PolicyContext> {
  /** Runs `fn` under this policy. `signal` cancels the call and every wait inside the policy. */
  execute<T>(fn: (ctx: C) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>;
}

/**
 * A signal that never aborts: handed to functions when the caller gave none. Shared, allocation-free.
 *
 * @example
 * ```ts
 * const ctx: PolicyContext = { signal: callerSignal ?? neverAbortedSignal };
 * ```
 */
export const neverAbortedSignal: AbortSignal = new AbortController().signal;
