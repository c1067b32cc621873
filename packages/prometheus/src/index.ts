import { Counter, Gauge, Histogram, type Registry, register as defaultRegister } from 'prom-client';
import {
  type AdaptiveLimiterPolicy,
  adaptiveLimiterRejectionReasons,
  bulkheadRejectionReasons,
  fallbackOutcomes,
  retryGiveUpReasons,
  writeQueueStoreOperations,
  type BreakerRegistry,
  type BulkheadPolicy,
  type CircuitBreaker,
  type HedgePolicy,
  type RateLimiterPolicy,
  type TimeoutPolicy,
  type WriteQueue,
} from 'tripswitch';
import type { ChaosPolicy } from 'tripswitch/chaos';
import type { InstrumentablePolicy, MetricsHandle } from 'tripswitch/exporter';
import {
  bindMetrics,
  type MetricsMakers,
  type PolledMetric,
  polledMetrics,
  stateValue,
} from 'tripswitch/exporter';

export { type InstrumentablePolicy, type MetricsHandle, stateValue } from 'tripswitch/exporter';

/**
 * Options of {@link prometheusMetrics}.
 *
 * @example
 * ```ts
 * const options: PrometheusMetricsOptions = { registry, register: new Registry(), prefix: 'shop_' };
 * ```
 */
export interface PrometheusMetricsOptions {
  /**
   * Breakers to follow, including ones added later. Without it no `circuit_breaker_*` metric is
   * registered (for policy metrics through `instrument()` alone).
   */
  registry?: BreakerRegistry;
  /** @default prom-client's global register */
  register?: Registry;
  /** @default '' */
  prefix?: string;
}

/**
 * What {@link prometheusMetrics} returns.
 *
 * @example
 * ```ts
 * const metrics: PrometheusMetrics = prometheusMetrics({ registry });
 * process.on('SIGTERM', () => metrics.dispose());
 * ```
 */
export interface PrometheusMetrics extends MetricsHandle {
  /**
   * Registers metrics for a retry, timeout, bulkhead, rate limiter, fallback, hedge, adaptive limiter or chaos policy under the label
   * `policy="<name>"`. The kind is read from the policy's `kind` (see `policyKind` in core). A `wrap()` instruments each
   * policy in it (breakers inside are skipped: they are followed through `registry`). A write
   * queue (`writeQueue()`) gets the `tripswitch_write_queue_*` metrics under `queue="<name>"`. One
   * name per kind: a second policy of the same kind under the same name throws. Returns a handle
   * whose `dispose()` detaches the listeners and drops the policy's series.
   */
  instrument(name: string, policy: InstrumentablePolicy): MetricsHandle;
}

/**
 * Exposes breaker metrics of a registry through prom-client, and policy metrics through
 * `instrument()`. Returns a disposable.
 *
 * @example
 * const m = prometheusMetrics({ registry });
 * m.instrument('payments', retry({ maxAttempts: 3 }));
 * m.dispose();
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  const reg = options.register ?? defaultRegister;
  const p = options.prefix ?? '';
  const names: string[] = [];
  const mk = <T>(m: T & { name?: string }, n: string): T => {
    names.push(p + n);
    return m;
  };
  const breakers = options.registry;
  let breaker: ((b: CircuitBreaker) => { dispose(): void }[]) | undefined;
  if (breakers !== undefined) {
    mk(
      new Gauge({
        name: `${p}circuit_breaker_state`,
        help: 'Breaker state: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled, 5 metrics-only',
        labelNames: ['service'],
        registers: [reg],
        collect() {
          this.reset();
          for (const b of breakers) this.set({ service: b.name }, stateValue[b.state]);
        },
      }),
      'circuit_breaker_state',
    );
    mk(
      new Counter({
        name: `${p}circuit_breaker_failures_total`,
        help: 'Calls recorded as failures',
        labelNames: ['service'],
        registers: [reg],
        collect() {
          this.reset();
          for (const b of breakers) this.inc({ service: b.name }, b.stats().failures);
        },
      }),
      'circuit_breaker_failures_total',
    );
    mk(
      new Counter({
        name: `${p}circuit_breaker_rejections_total`,
        help: 'Calls rejected without running',
        labelNames: ['service'],
        registers: [reg],
        collect() {
          this.reset();
          for (const b of breakers) this.inc({ service: b.name }, b.stats().rejections);
        },
      }),
      'circuit_breaker_rejections_total',
    );
    mk(
      new Counter({
        name: `${p}circuit_breaker_calls_total`,
        help: 'Calls by outcome',
        labelNames: ['service', 'outcome'],
        registers: [reg],
        collect() {
          this.reset();
          for (const b of breakers) {
            const s = b.stats();
            this.inc({ service: b.name, outcome: 'success' }, s.successes);
            this.inc({ service: b.name, outcome: 'failure' }, s.failures);
            this.inc({ service: b.name, outcome: 'neutral' }, s.neutral);
            this.inc({ service: b.name, outcome: 'rejected' }, s.rejections);
          }
        },
      }),
      'circuit_breaker_calls_total',
    );
    const duration = mk(
      new Histogram({
        name: `${p}circuit_breaker_call_duration_seconds`,
        help: 'Duration of calls that ran',
        labelNames: ['service', 'outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [reg],
      }),
      'circuit_breaker_call_duration_seconds',
    );
    const transitions = mk(
      new Counter({
        name: `${p}circuit_breaker_transitions_total`,
        help: 'State transitions',
        labelNames: ['service', 'from', 'to'],
        registers: [reg],
      }),
      'circuit_breaker_transitions_total',
    );
    breaker = (b) => [
      b.on('success', (e) => duration.observe({ service: e.name, outcome: 'success' }, e.duration / 1000)),
      b.on('failure', (e) => duration.observe({ service: e.name, outcome: 'failure' }, e.duration / 1000)),
      b.on('stateChange', (e) => transitions.inc({ service: e.name, from: e.from, to: e.to })),
    ];
  }

  // Policy metrics: each kind's families are registered on its first instrument().
  const counter = (n: string, help: string, labelNames: string[]): Counter<string> =>
    mk(new Counter({ name: `${p}${n}`, help, labelNames, registers: [reg] }), n);
  /**
   * A gauge (or, with `total`, a counter) read from each instrumented policy at scrape time, its
   * name in the label `label`.
   */
  const polled = <P>(
    n: string,
    help: string,
    policies: Map<string, P>,
    value: (policy: P) => number,
    total = false,
    label = 'policy',
  ): void => {
    const config = {
      name: `${p}${n}`,
      help,
      labelNames: [label],
      registers: [reg],
    };
    if (total)
      mk(
        new Counter({
          ...config,
          collect() {
            this.reset();
            for (const [name, x] of policies) this.inc({ [label]: name }, value(x));
          },
        }),
        n,
      );
    else
      mk(
        new Gauge({
          ...config,
          collect() {
            this.reset();
            for (const [name, x] of policies) this.set({ [label]: name }, value(x));
          },
        }),
        n,
      );
  };
  /** The shared {@link polledMetrics} of a kind; counters get Prometheus' `_total`. */
  const polledAll = <P>(list: readonly PolledMetric<P>[], policies: Map<string, P>): void => {
    for (const m of list)
      polled(m.counter ? `${m.name}_total` : m.name, m.help, policies, m.value, m.counter);
  };
  /** Counts events from `name`, with one series per `values` of `label` (0 until the first event). */
  const eventCounter = (c: Counter<string>, name: string, label?: string, values: readonly string[] = []) => {
    const series =
      label === undefined ? [{ policy: name }] : values.map((v) => ({ policy: name, [label]: v }));
    for (const l of series) c.inc(l, 0);
    return () => {
      for (const l of series) c.remove(l);
    };
  };
  const makers: MetricsMakers = {
    retry: () => {
      const retries = counter(
        'tripswitch_retries_total',
        'Retries scheduled after a failed attempt (first attempts are not counted)',
        ['policy'],
      );
      const giveUps = counter('tripswitch_retry_giveups_total', 'Calls the retry gave up on, by reason', [
        'policy',
        'reason',
      ]);
      return (name, r) => {
        const drop = [eventCounter(retries, name), eventCounter(giveUps, name, 'reason', retryGiveUpReasons)];
        const s = [
          r.on('retry', () => retries.inc({ policy: name })),
          r.on('giveUp', (e) => giveUps.inc({ policy: name, reason: e.reason })),
        ];
        return () => {
          for (const x of s) x.dispose();
          for (const d of drop) d();
        };
      };
    },
    timeout: () => {
      const all = new Map<string, TimeoutPolicy>();
      const timeouts = counter('tripswitch_timeouts_total', 'Calls that reached their deadline', ['policy']);
      polledAll(polledMetrics.timeout, all);
      return (name, t) => {
        all.set(name, t);
        const drop = eventCounter(timeouts, name);
        const s = t.on('timeout', () => timeouts.inc({ policy: name }));
        return () => {
          s.dispose();
          drop();
          all.delete(name);
        };
      };
    },
    bulkhead: () => {
      const all = new Map<string, BulkheadPolicy>();
      polledAll(polledMetrics.bulkhead, all);
      const rejections = counter('tripswitch_bulkhead_rejections_total', 'Calls rejected, by reason', [
        'policy',
        'reason',
      ]);
      return (name, b) => {
        all.set(name, b);
        const drop = eventCounter(rejections, name, 'reason', bulkheadRejectionReasons);
        const s = b.on('rejected', (e) => rejections.inc({ policy: name, reason: e.reason }));
        return () => {
          s.dispose();
          drop();
          all.delete(name);
        };
      };
    },
    rateLimiter: () => {
      const all = new Map<string, RateLimiterPolicy>();
      polledAll(polledMetrics.rateLimiter, all);
      const rejections = counter(
        'tripswitch_rate_limiter_rejections_total',
        'Calls rejected for want of a token',
        ['policy'],
      );
      return (name, l) => {
        all.set(name, l);
        const drop = eventCounter(rejections, name);
        const s = l.on('rejected', () => rejections.inc({ policy: name }));
        return () => {
          s.dispose();
          drop();
          all.delete(name);
        };
      };
    },
    fallback: () => {
      const served = counter(
        'tripswitch_fallbacks_total',
        'Answers the fallback gave in place of the call, by outcome',
        ['policy', 'outcome'],
      );
      return (name, f) => {
        const drop = eventCounter(served, name, 'outcome', fallbackOutcomes);
        const s = f.on('fallback', (e) => served.inc({ policy: name, outcome: e.outcome }));
        return () => {
          s.dispose();
          drop();
        };
      };
    },
    hedge: () => {
      const all = new Map<string, HedgePolicy>();
      polledAll(polledMetrics.hedge, all);
      polled(
        'tripswitch_hedge_delay_seconds',
        'The delay before an extra attempt (NaN while a percentile delay lacks samples)',
        all,
        (h) => (h.stats().delayMs ?? Number.NaN) / 1000,
      );
      return (name, h) => {
        all.set(name, h);
        return () => all.delete(name);
      };
    },
    adaptiveLimiter: () => {
      const all = new Map<string, AdaptiveLimiterPolicy>();
      polledAll(polledMetrics.adaptiveLimiter, all);
      const rejections = counter(
        'tripswitch_adaptive_limiter_rejections_total',
        'Calls rejected, by reason',
        ['policy', 'reason'],
      );
      return (name, l) => {
        all.set(name, l);
        const drop = eventCounter(rejections, name, 'reason', adaptiveLimiterRejectionReasons);
        const s = l.on('rejected', (e) => rejections.inc({ policy: name, reason: e.reason }));
        return () => {
          s.dispose();
          drop();
          all.delete(name);
        };
      };
    },
    chaos: () => {
      // Several chaos policies (one per kind of disturbance) may share a name: series carry both.
      const all = new Map<ChaosPolicy, string>();
      mk(
        new Gauge({
          name: `${p}tripswitch_chaos_injection_rate`,
          help: 'The fraction of calls the chaos policy disturbs (0 while switched off)',
          labelNames: ['policy', 'chaos'],
          registers: [reg],
          collect() {
            this.reset();
            for (const [c, name] of all) this.set({ policy: name, chaos: c.chaos }, c.enabled ? c.rate : 0);
          },
        }),
        'tripswitch_chaos_injection_rate',
      );
      const injected = counter('tripswitch_chaos_injected_total', 'Calls disturbed on purpose', [
        'policy',
        'chaos',
      ]);
      return (name, c) => {
        all.set(c, name);
        const l = { policy: name, chaos: c.chaos };
        injected.inc(l, 0);
        const s = c.on('injected', () => injected.inc(l));
        return () => {
          s.dispose();
          injected.remove(l);
          all.delete(c);
        };
      };
    },
    writeQueue: () => {
      const all = new Map<string, WriteQueue<unknown, unknown>>();
      polled('tripswitch_write_queue_size', 'Writes waiting for replay', all, (q) => q.size, false, 'queue');
      const queued = counter('tripswitch_write_queue_queued_total', 'Writes stored for replay', ['queue']);
      const sent = counter('tripswitch_write_queue_sent_total', 'Stored writes delivered by a replay', [
        'queue',
      ]);
      const failures = counter(
        'tripswitch_write_queue_replay_failures_total',
        'Replays that failed (the write stays queued)',
        ['queue'],
      );
      const dead = counter(
        'tripswitch_write_queue_dead_total',
        'Writes dropped: not retryable, or out of attempts',
        ['queue'],
      );
      const storeErrors = counter(
        'tripswitch_write_queue_store_errors_total',
        'Store failures, by operation',
        ['queue', 'operation'],
      );
      const age = mk(
        new Histogram({
          name: `${p}tripswitch_write_queue_age_seconds`,
          help: 'Time from queued to delivered, of writes delivered by a replay',
          labelNames: ['queue'],
          buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
          registers: [reg],
        }),
        'tripswitch_write_queue_age_seconds',
      );
      return (name, q) => {
        all.set(name, q);
        const l = { queue: name };
        const ops = writeQueueStoreOperations.map((operation) => ({ queue: name, operation }));
        const counters = [queued, sent, failures, dead];
        for (const c of counters) c.inc(l, 0);
        for (const o of ops) storeErrors.inc(o, 0);
        age.zero(l);
        const s = [
          q.on('queued', () => queued.inc(l)),
          q.on('sent', (e) => {
            sent.inc(l);
            age.observe(l, e.queuedMs / 1000);
          }),
          q.on('replayFailed', () => failures.inc(l)),
          q.on('dead', () => dead.inc(l)),
          q.on('storeError', (e) => storeErrors.inc({ queue: name, operation: e.operation })),
        ];
        return () => {
          for (const x of s) x.dispose();
          for (const c of counters) c.remove(l);
          for (const o of ops) storeErrors.remove(o);
          age.remove(l);
          all.delete(name);
        };
      };
    },
  };
  return bindMetrics({
    registry: breakers,
    breaker,
    makers,
    dispose: () => {
      for (const n of names) reg.removeSingleMetric(n);
    },
  });
}
