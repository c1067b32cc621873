/**
 * `wrap()`: compose policies, outermost first.
 *
 * @module
 */
import { neverAbortedSignal, type PolicyContext } from './policy.js';

/**
 * Anything `wrap()` can compose: a policy whose `execute` runs `fn(ctx)`.
 *
 * @example
 * ```ts
 * const p: AnyPolicy = retry();
 * ```
 */
export interface AnyPolicy {
  // biome-ignore lint/suspicious/noExplicitAny: the context and result types are recovered by ContextOf / ResultOf.
  execute(fn: (ctx: any) => any, signal?: AbortSignal): Promise<unknown>;
  /** Context keys the policy adds (besides `signal`); unknown means "copy every enumerable key". */
  readonly contextKeys?: readonly string[];
}

/**
 * The context type a policy passes to `fn`.
 *
 * @example
 * ```ts
 * type Ctx = ContextOf<RetryPolicy>; // PolicyContext & { attempt: number }
 * ```
 */
export type ContextOf<P> = P extends {
  execute(fn: (ctx: infer C) => infer _R, signal?: AbortSignal): unknown;
}
  ? C
  : never;

/**
 * Extra values a policy may resolve with besides `fn`'s (a fallback's value).
 *
 * @example
 * ```ts
 * type Extra = FallbackResultOf<FallbackPolicy<'n/a'>>; // 'n/a'
 * ```
 */
export type FallbackResultOf<P> = P extends { readonly __fallbackResult?: infer R } ? R : never;

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void
  ? I
  : never;

/**
 * The context `wrap(...policies)` hands to `fn`: the intersection of every policy's context.
 *
 * @example
 * ```ts
 * type C = WrappedContext<[RetryPolicy, CircuitBreaker, TimeoutPolicy]>; // { signal; attempt }
 * ```
 */
export type WrappedContext<P extends readonly AnyPolicy[]> = UnionToIntersection<ContextOf<P[number]>> &
  PolicyContext;

/**
 * A composition made by {@link wrap}.
 *
 * @example
 * ```ts
 * const p: WrappedPolicy<[RetryPolicy, TimeoutPolicy]> = wrap(retry(), timeout({ ms: 100 }));
 * ```
 */
export interface WrappedPolicy<P extends readonly AnyPolicy[]> {
  /** Which policy this is, so add-ons (metrics, dashboards) recognise it without guessing. */
  readonly kind: 'wrap';
  /** The composed policies, outermost first. */
  readonly policies: P;
  readonly contextKeys: readonly string[] | undefined;
  execute<T>(
    fn: (ctx: WrappedContext<P>) => PromiseLike<T> | T,
    signal?: AbortSignal,
  ): Promise<T | FallbackResultOf<P[number]>>;
}

/** The context handed to `fn` when outer layers add fields: their fields plus the innermost signal. */
class MergedContext {
  readonly #inner: PolicyContext;
  constructor(inner: PolicyContext) {
    this.#inner = inner;
  }
  get signal(): AbortSignal {
    return this.#inner.signal;
  }
}

function copyKeys(into: Record<string, unknown>, from: object, keys: readonly string[] | undefined): void {
  if (keys === undefined) {
    for (const k in from) if (k !== 'signal') into[k] = (from as Record<string, unknown>)[k];
    return;
  }
  for (let i = 0; i < keys.length; i++) into[keys[i]!] = (from as Record<string, unknown>)[keys[i]!];
}

const NO_KEYS: readonly string[] = [];

/**
 * The keys a policy adds to the context. A circuit breaker adds none (its context is the plain
 * {@link PolicyContext}); it is recognised by its permit API, since it does not declare `contextKeys`.
 */
function keysOf(p: AnyPolicy): readonly string[] | undefined {
  if (p.contextKeys !== undefined) return p.contextKeys;
  const b = p as { tryAcquire?: unknown; acquire?: unknown };
  return typeof b.tryAcquire === 'function' && typeof b.acquire === 'function' ? NO_KEYS : undefined;
}

const inner = (s: AbortSignal): AbortSignal | undefined => (s === neverAbortedSignal ? undefined : s);

class Wrapped<P extends readonly AnyPolicy[]> implements WrappedPolicy<P> {
  // On the prototype, not per instance: idle policies stay as small as they were.
  get kind(): 'wrap' {
    return 'wrap';
  }

  readonly policies: P;
  readonly contextKeys: readonly string[] | undefined;
  readonly #merge: boolean;
  readonly #keys: (readonly string[] | undefined)[];
  /** Without context merging: the layers composed once, innermost first, into one function. */
  readonly #chain:
    | ((fn: (ctx: unknown) => unknown, signal: AbortSignal | undefined) => Promise<unknown>)
    | undefined;

  constructor(policies: P) {
    this.policies = policies;
    const keys: string[] = [];
    let unknownKeys = false;
    this.#keys = policies.map(keysOf);
    for (const k of this.#keys) {
      if (k === undefined) unknownKeys = true;
      else keys.push(...k);
    }
    this.contextKeys = unknownKeys ? undefined : keys;
    // Only outer layers' fields need copying: the innermost context is handed over as it is.
    let outerAdds = false;
    for (let i = 0; i < policies.length - 1; i++) {
      const k = this.#keys[i];
      if (k === undefined || k.length > 0) outerAdds = true;
    }
    this.#merge = outerAdds;
    if (!outerAdds) {
      const last = policies[policies.length - 1]!;
      let run = (fn: (ctx: unknown) => unknown, s: AbortSignal | undefined) => last.execute(fn, s);
      for (let i = policies.length - 2; i >= 0; i--) {
        const p = policies[i]!;
        const next = run;
        run = (fn, s) => p.execute((ctx: PolicyContext) => next(fn, inner(ctx.signal)), s);
      }
      this.#chain = run;
    }
  }

  execute<T>(fn: (ctx: WrappedContext<P>) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError('execute: fn must be a function'));
    if (this.#chain !== undefined) return this.#chain(fn as (ctx: unknown) => unknown, signal) as Promise<T>;
    return this.#run(0, fn as (ctx: unknown) => PromiseLike<T> | T, signal, undefined);
  }

  #run<T>(
    i: number,
    fn: (ctx: unknown) => PromiseLike<T> | T,
    signal: AbortSignal | undefined,
    extras: Record<string, unknown> | undefined,
  ): Promise<T> {
    const p = this.policies[i]!;
    const last = i === this.policies.length - 1;
    if (last) {
      if (!this.#merge) return p.execute(fn, signal) as Promise<T>;
      return p.execute((ctx: PolicyContext) => {
        const m = new MergedContext(ctx) as unknown as Record<string, unknown>;
        if (extras !== undefined) Object.assign(m, extras);
        copyKeys(m, ctx, this.#keys[i]);
        return fn(m);
      }, signal) as Promise<T>;
    }
    if (!this.#merge)
      return p.execute(
        (ctx: PolicyContext) => this.#run(i + 1, fn, inner(ctx.signal), undefined),
        signal,
      ) as Promise<T>;
    return p.execute((ctx: PolicyContext) => {
      const keys = this.#keys[i];
      let next = extras;
      if (keys === undefined || keys.length > 0) {
        next = extras === undefined ? {} : { ...extras };
        copyKeys(next, ctx, keys);
      }
      return this.#run(i + 1, fn, inner(ctx.signal), next);
    }, signal) as Promise<T>;
  }
}

/**
 * Composes policies: the first is outermost. `wrap(a, b, c).execute(fn)` is
 * `a.execute(() => b.execute(() => c.execute(fn)))`, with each layer's signal handed to the next
 * (so a caller abort or an outer timeout reaches the innermost call) and `fn` receiving one
 * context with every layer's fields (`attempt` from a retry, `signal` from the innermost layer).
 *
 * The usual order is `wrap(fallback, retry, breaker, timeout)`; see docs/policies.md for why.
 *
 * @example
 * ```ts
 * import { circuitBreaker, retry, timeout, wrap } from 'tripswitch';
 * const policy = wrap(retry({ maxAttempts: 3 }), circuitBreaker({ name: 'api' }), timeout({ ms: 1_000 }));
 * const res = await policy.execute(({ signal, attempt }) => fetch(url, { signal }), req.signal);
 * ```
 */
export function wrap<const P extends readonly AnyPolicy[]>(...policies: P): WrappedPolicy<P> {
  if (policies.length === 0) throw new TypeError('wrap: give at least one policy');
  policies.forEach((p, i) => {
    if (typeof p?.execute !== 'function')
      throw new TypeError(`wrap: argument ${i} is not a policy (no execute())`);
  });
  return new Wrapped(policies);
}
