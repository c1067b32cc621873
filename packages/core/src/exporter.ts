/**
 * `bindMetrics()`: what every metrics exporter of tripswitch does the same way, whatever its
 * metrics library: follow the breakers of a registry (those added later too, and let go of those
 * removed), and give policies an `instrument(name, policy)` that walks `wrap()`s, refuses a
 * second policy of a kind under one name, and undoes all of it on `dispose()`.
 *
 * The exporter brings only what depends on its library: the listeners of one breaker, and per
 * kind of policy a maker that creates the kind's instruments (once, on its first policy) and
 * returns how to attach one policy to them. `@tripswitch/prometheus` and `@tripswitch/otel` are
 * built on it.
 *
 * Nothing here runs per call: the listeners the exporter returns are the ones the policies call.
 *
 * @module exporter
 */
import type { BreakerRegistry } from './registry.js';
import type { CircuitBreaker, CircuitState } from './breaker.js';
import type { AdaptiveLimiterPolicy } from './adaptive-limiter.js';
import type { BulkheadPolicy } from './bulkhead.js';
import type { ChaosPolicy } from './chaos/index.js';
import type { FallbackPolicy } from './fallback.js';
import type { HedgePolicy } from './hedge.js';
import { isWriteQueue, type PolicyKind, policyKind } from './policy-kind.js';
import type { RateLimiterPolicy } from './rate-limiter.js';
import type { RetryPolicy } from './retry.js';
import type { TimeoutPolicy } from './timeout.js';
import type { WriteQueue } from './write-queue.js';

/**
 * What an exporter's `instrument()` accepts: one of these, a `wrap()` of them, or a write queue.
 *
 * @example
 * ```ts
 * const policy: InstrumentablePolicy = wrap(retry(), timeout({ ms: 500 }));
 * metrics.instrument('inventory', policy);
 * ```
 */
export type InstrumentablePolicy =
  | RetryPolicy
  | TimeoutPolicy
  | BulkheadPolicy
  | RateLimiterPolicy
  | FallbackPolicy<unknown>
  | HedgePolicy
  | AdaptiveLimiterPolicy
  | ChaosPolicy
  | { readonly policies: readonly unknown[] }
  | WriteQueue<unknown, unknown>;

/**
 * A disposable: `dispose()` (or `using`) undoes what created it. Disposing twice is a no-op.
 *
 * @example
 * ```ts
 * using handle = metrics.instrument('inventory', retry()); // series removed at the end of the scope
 * ```
 */
export interface MetricsHandle {
  dispose(): void;
  [Symbol.dispose](): void;
}

/**
 * The kinds of policy `instrument()` attaches metrics to (a write queue is not a policy, but is
 * metered alike).
 *
 * @example
 * ```ts
 * const kinds: MeteredKind[] = ['retry', 'timeout', 'writeQueue'];
 * ```
 */
export type MeteredKind = Exclude<PolicyKind, 'breaker' | 'wrap'> | 'writeQueue';

/**
 * The policy type of each {@link MeteredKind}.
 *
 * @example
 * ```ts
 * const attachRetry = (name: string, r: MeteredPolicyOf['retry']) => r.on('retry', () => count(name));
 * ```
 */
export interface MeteredPolicyOf {
  retry: RetryPolicy;
  timeout: TimeoutPolicy;
  bulkhead: BulkheadPolicy;
  rateLimiter: RateLimiterPolicy;
  fallback: FallbackPolicy<unknown>;
  hedge: HedgePolicy;
  adaptiveLimiter: AdaptiveLimiterPolicy;
  chaos: ChaosPolicy;
  writeQueue: WriteQueue<unknown, unknown>;
}

/**
 * Numeric value of `circuit_breaker_state`: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled, 5 metrics-only.
 *
 * @example
 * ```ts
 * const alertWhen = `circuit_breaker_state == ${stateValue.open}`; // for a PromQL rule
 * ```
 */
export const stateValue: Record<CircuitState, number> = {
  closed: 0,
  open: 1,
  'half-open': 2,
  isolated: 3,
  disabled: 4,
  'metrics-only': 5,
};

/**
 * A value an exporter reads from each instrumented policy when metrics are collected.
 *
 * @example
 * ```ts
 * const active: PolledMetric<BulkheadPolicy> = {
 *   name: 'tripswitch_bulkhead_active', help: 'Calls running', value: (b) => b.stats().running,
 * };
 * ```
 */
export interface PolledMetric<P> {
  /** The metric's name, without the `_total` that Prometheus gives counters. */
  readonly name: string;
  readonly help: string;
  readonly value: (policy: P) => number;
  /** A count since the policy was created (only grows), not a level. */
  readonly counter?: boolean;
}

const level = <P>(name: string, help: string, value: (p: P) => number): PolledMetric<P> => ({
  name,
  help,
  value,
});
const count = <P>(name: string, help: string, value: (p: P) => number): PolledMetric<P> => ({
  name,
  help,
  value,
  counter: true,
});
const ADMITTED = 'Calls admitted (at once or after queueing) since';

/**
 * The metrics every exporter reads from policies at collection time, per kind, in the order they
 * are registered. (The hedge's delay is not here: its unit and its "no value yet" differ by exporter.)
 *
 * @example
 * ```ts
 * for (const m of polledMetrics.bulkhead) gauge(m.name, m.help, (b) => m.value(b));
 * ```
 */
export const polledMetrics: {
  readonly [K in 'timeout' | 'bulkhead' | 'rateLimiter' | 'hedge' | 'adaptiveLimiter']: readonly PolledMetric<
    MeteredPolicyOf[K]
  >[];
} = {
  timeout: [level('tripswitch_timeout_pending', 'Calls started and not yet settled', (t) => t.pending)],
  bulkhead: [
    level('tripswitch_bulkhead_active', 'Calls running', (b) => b.stats().running),
    level('tripswitch_bulkhead_queued', 'Calls waiting for a slot', (b) => b.stats().queued),
    level(
      'tripswitch_bulkhead_max_concurrent',
      'Calls allowed to run at once',
      (b) => b.stats().maxConcurrent,
    ),
    level('tripswitch_bulkhead_max_queue', 'Calls allowed to wait', (b) => b.stats().maxQueue),
    count('tripswitch_bulkhead_executed', `${ADMITTED} the bulkhead was created`, (b) => b.stats().executed),
  ],
  rateLimiter: [
    level(
      'tripswitch_rate_limiter_tokens',
      'Tokens available (negative while callers wait)',
      (l) => l.tokens,
    ),
  ],
  hedge: [
    count('tripswitch_hedge_calls', 'Calls through the hedge', (h) => h.stats().calls),
    count(
      'tripswitch_hedges',
      'Extra attempts started (the first attempt is not counted)',
      (h) => h.stats().hedges,
    ),
    count('tripswitch_hedge_wins', 'Calls answered by an extra attempt', (h) => h.stats().hedgeWins),
    count(
      'tripswitch_hedge_budget_exhausted',
      'Extra attempts the budget refused',
      (h) => h.stats().budgetExhausted,
    ),
  ],
  adaptiveLimiter: [
    level('tripswitch_adaptive_limit', 'The current concurrency limit', (l) => l.stats().limit),
    level('tripswitch_adaptive_limiter_active', 'Calls running', (l) => l.stats().running),
    level('tripswitch_adaptive_limiter_queued', 'Calls waiting for a slot', (l) => l.stats().queued),
    count(
      'tripswitch_adaptive_limiter_executed',
      `${ADMITTED} the limiter was created`,
      (l) => l.stats().executed,
    ),
  ],
};

/**
 * Per {@link MeteredKind}, a maker called on the kind's first `instrument()`: it creates the kind's
 * instruments and returns how to attach one policy to them; attaching returns how to detach it.
 *
 * @example
 * ```ts
 * const makers: Partial<MetricsMakers> = {
 *   retry: () => {
 *     const retries = new Map<string, number>();
 *     return (name, r) => {
 *       const s = r.on('retry', () => retries.set(name, (retries.get(name) ?? 0) + 1));
 *       return () => s.dispose();
 *     };
 *   },
 * };
 * ```
 */
export type MetricsMakers = {
  [K in MeteredKind]: () => (name: string, policy: MeteredPolicyOf[K]) => () => void;
};

/**
 * Options of {@link bindMetrics}.
 *
 * @example
 * ```ts
 * const options: BindMetricsOptions = {
 *   registry,
 *   breaker: (b) => [b.on('stateChange', (e) => transitions.add(1, { service: e.name }))],
 *   makers,
 *   dispose: () => meterProvider.shutdown(),
 * };
 * ```
 */
export interface BindMetricsOptions {
  /** Breakers to follow, including ones added later. */
  registry?: BreakerRegistry | undefined;
  /** Subscribes to one breaker of `registry` (once per breaker); the subscriptions are disposed when it leaves. */
  breaker?: ((breaker: CircuitBreaker) => readonly { dispose(): void }[]) | undefined;
  /** How each kind of policy is metered. */
  makers: MetricsMakers;
  /** Called once by the first `dispose()`, after every policy was detached and every breaker let go. */
  dispose?: (() => void) | undefined;
}

/**
 * What {@link bindMetrics} returns: an exporter's `instrument()` and `dispose()`.
 *
 * @example
 * ```ts
 * const bound: MetricsBinding = bindMetrics({ registry, breaker, makers });
 * using handle = bound.instrument('inventory', retry());
 * ```
 */
export interface MetricsBinding extends MetricsHandle {
  /**
   * Attaches `policy` (each policy of a `wrap()`; breakers inside are skipped) under `name`. One
   * name per kind: a second policy of the same kind under the same name throws, and so does a
   * breaker or anything not a policy given directly. Returns a handle that detaches it.
   */
  instrument(name: string, policy: InstrumentablePolicy): MetricsHandle;
}

/**
 * Follows the breakers of `registry` and meters policies through `makers`: the part of a metrics
 * exporter that does not depend on its metrics library.
 *
 * @example
 * ```ts
 * import { bindMetrics } from 'tripswitch/exporter';
 *
 * const { instrument, dispose } = bindMetrics({
 *   registry,
 *   breaker: (b) => [b.on('rejected', (e) => rejected.inc({ service: e.name }))],
 *   makers,
 * });
 * ```
 */
export function bindMetrics(options: BindMetricsOptions): MetricsBinding {
  const subs = new Map<CircuitBreaker, readonly { dispose(): void }[]>();
  const regSubs: { dispose(): void }[] = [];
  const breakers = options.registry;
  const listen = options.breaker;
  if (breakers !== undefined && listen !== undefined) {
    const follow = (b: CircuitBreaker): void => {
      if (!subs.has(b)) subs.set(b, listen(b));
    };
    for (const b of breakers) follow(b);
    regSubs.push(
      breakers.on('added', (e) => follow(e.breaker)),
      breakers.on('removed', (e) => {
        for (const s of subs.get(e.breaker) ?? []) s.dispose();
        subs.delete(e.breaker);
      }),
    );
  }

  type Detach = () => void;
  const makers = options.makers;
  const attachers: { [K in MeteredKind]?: (name: string, policy: MeteredPolicyOf[K]) => Detach } = {};
  const taken = new Set<string>();
  const handles = new Set<() => void>();
  const add = (name: string, policy: unknown, undo: Detach[], top: boolean): void => {
    const kind = isWriteQueue(policy) ? 'writeQueue' : policyKind(policy);
    if (kind === 'wrap') {
      for (const q of (policy as { policies: readonly unknown[] }).policies) add(name, q, undo, false);
      return;
    }
    if (kind === 'breaker') {
      if (top) throw new TypeError('instrument: breakers are followed through the `registry` option');
      return;
    }
    if (kind === undefined) {
      if (top)
        throw new TypeError(
          'instrument: not a retry, timeout, bulkhead, rate limiter, fallback, hedge, adaptive limiter, chaos policy, wrap() of them or write queue',
        );
      return;
    }
    const key = kind === 'chaos' ? `chaos:${(policy as ChaosPolicy).chaos}\0${name}` : `${kind}\0${name}`;
    if (taken.has(key)) throw new Error(`instrument: a ${kind} named "${name}" is already instrumented`);
    // biome-ignore lint/suspicious/noAssignInExpressions: lazy creation of the kind's instruments
    const attach = (attachers[kind] ??= makers[kind]() as never) as (n: string, x: unknown) => Detach;
    const detach = attach(name, policy);
    taken.add(key);
    undo.push(() => {
      taken.delete(key);
      detach();
    });
  };
  let disposed = false;
  const instrument = (name: string, policy: InstrumentablePolicy): MetricsHandle => {
    if (disposed) throw new Error('instrument: the metrics were disposed');
    if (typeof name !== 'string' || name === '')
      throw new TypeError('instrument: name must be a non-empty string');
    const undo: Detach[] = [];
    try {
      add(name, policy, undo, true);
    } catch (err) {
      for (const u of undo) u();
      throw err;
    }
    let done = false;
    const dispose = (): void => {
      if (done) return;
      done = true;
      handles.delete(dispose);
      for (const u of undo) u();
    };
    handles.add(dispose);
    return { dispose, [Symbol.dispose]: dispose };
  };

  const dispose = (): void => {
    if (disposed) return;
    disposed = true;
    for (const h of [...handles]) h();
    for (const l of subs.values()) for (const s of l) s.dispose();
    for (const s of regSubs) s.dispose();
    subs.clear();
    options.dispose?.();
  };
  return { instrument, dispose, [Symbol.dispose]: dispose };
}
