import {
  type Attributes,
  type Counter,
  type Meter,
  metrics,
  type ObservableResult,
} from '@opentelemetry/api';
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
import { bindMetrics, type MetricsMakers, polledMetrics, stateValue } from 'tripswitch/exporter';

export type { InstrumentablePolicy, MetricsHandle } from 'tripswitch/exporter';

/**
 * Options of {@link otelMetrics}.
 *
 * @example
 * ```ts
 * const options: OtelMetricsOptions = { registry, meter: provider.getMeter('checkout') };
 * ```
 */
export interface OtelMetricsOptions {
  /**
   * Breakers to follow, including ones added later. Without it no `circuit_breaker_*` instrument
   * is created (for policy metrics through `instrument()` alone).
   */
  registry?: BreakerRegistry;
  /** @default metrics.getMeter('tripswitch') */
  meter?: Meter;
}

/**
 * What {@link otelMetrics} returns.
 *
 * @example
 * ```ts
 * const metrics: OtelMetrics = otelMetrics({ registry });
 * process.on('SIGTERM', () => metrics.dispose());
 * ```
 */
export interface OtelMetrics extends MetricsHandle {
  /**
   * Records metrics of a retry, timeout, bulkhead, rate limiter, fallback, hedge, adaptive limiter or chaos policy with the attribute
   * `policy: name`. The kind is read from the policy's `kind` (see `policyKind` in core). A `wrap()` instruments each
   * policy in it (breakers inside are skipped: they are followed through `registry`). A write
   * queue (`writeQueue()`) gets the `tripswitch_write_queue_*` instruments with the attribute
   * `queue: name`. One name per kind: a second policy of the same kind under the same name throws.
   * Returns a handle whose `dispose()` detaches the listeners and stops the observations of the
   * policy (points already recorded on synchronous instruments stay in the SDK: the API cannot
   * delete them).
   */
  instrument(name: string, policy: InstrumentablePolicy): MetricsHandle;
}

/**
 * Records breaker metrics of a registry through `@opentelemetry/api`, and policy metrics through
 * `instrument()`. Returns a disposable.
 *
 * @example
 * const m = otelMetrics({ registry });
 * m.instrument('payments', retry({ maxAttempts: 3 }));
 * m.dispose();
 */
export function otelMetrics(options: OtelMetricsOptions): OtelMetrics {
  const meter = options.meter ?? metrics.getMeter('tripswitch');
  const removeCallbacks: (() => void)[] = [];
  const breakers = options.registry;
  let breaker: ((b: CircuitBreaker) => { dispose(): void }[]) | undefined;
  if (breakers !== undefined) {
    const state = meter.createObservableGauge('circuit_breaker_state', {
      description: '0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled, 5 metrics-only',
    });
    const cb = (r: { observe(v: number, a: Record<string, string>): void }): void => {
      for (const b of breakers) r.observe(stateValue[b.state], { service: b.name });
    };
    state.addCallback(cb);
    removeCallbacks.push(() => state.removeCallback(cb));
    const calls = meter.createCounter('circuit_breaker_calls', { description: 'Calls by outcome' });
    const duration = meter.createHistogram('circuit_breaker_call_duration', { unit: 'ms' });
    const transitions = meter.createCounter('circuit_breaker_transitions');
    breaker = (b) => [
      b.on('success', (e) => {
        calls.add(1, { service: e.name, outcome: 'success' });
        duration.record(e.duration, { service: e.name, outcome: 'success' });
      }),
      b.on('failure', (e) => {
        calls.add(1, { service: e.name, outcome: 'failure' });
        duration.record(e.duration, { service: e.name, outcome: 'failure' });
      }),
      b.on('rejected', (e) => calls.add(1, { service: e.name, outcome: 'rejected' })),
      b.on('stateChange', (e) => transitions.add(1, { service: e.name, from: e.from, to: e.to })),
    ];
  }

  // Policy instruments: each kind's instruments are created on its first instrument().
  /**
   * An observable gauge (or, with `counter`, an observable counter) read from each policy at
   * collection, its name in the attribute `attribute`.
   */
  const polled = <P>(
    n: string,
    description: string,
    policies: Map<string, P>,
    value: (policy: P) => number | undefined,
    counter = false,
    attribute = 'policy',
  ): void => {
    const o = counter
      ? meter.createObservableCounter(n, { description })
      : meter.createObservableGauge(n, { description });
    const cb = (r: ObservableResult<Attributes>): void => {
      for (const [name, x] of policies) {
        const v = value(x);
        if (v !== undefined) r.observe(v, { [attribute]: name });
      }
    };
    o.addCallback(cb);
    removeCallbacks.push(() => o.removeCallback(cb));
  };
  /** Starts the points of `name` at 0, one per `values` of `label`, so they exist before the first event. */
  const zero = (c: Counter, name: string, label?: string, values: readonly string[] = []): void => {
    if (label === undefined) c.add(0, { policy: name });
    else for (const v of values) c.add(0, { policy: name, [label]: v });
  };
  const makers: MetricsMakers = {
    retry: () => {
      const retries = meter.createCounter('tripswitch_retries', {
        description: 'Retries scheduled after a failed attempt (first attempts are not counted)',
      });
      const giveUps = meter.createCounter('tripswitch_retry_giveups', {
        description: 'Calls the retry gave up on, by reason',
      });
      return (name, r) => {
        zero(retries, name);
        zero(giveUps, name, 'reason', retryGiveUpReasons);
        const s = [
          r.on('retry', () => retries.add(1, { policy: name })),
          r.on('giveUp', (e) => giveUps.add(1, { policy: name, reason: e.reason })),
        ];
        return () => {
          for (const x of s) x.dispose();
        };
      };
    },
    timeout: () => {
      const all = new Map<string, TimeoutPolicy>();
      const timeouts = meter.createCounter('tripswitch_timeouts', {
        description: 'Calls that reached their deadline',
      });
      for (const m of polledMetrics.timeout) polled(m.name, m.help, all, m.value, m.counter);
      return (name, t) => {
        all.set(name, t);
        zero(timeouts, name);
        const s = t.on('timeout', () => timeouts.add(1, { policy: name }));
        return () => {
          s.dispose();
          all.delete(name);
        };
      };
    },
    bulkhead: () => {
      const all = new Map<string, BulkheadPolicy>();
      for (const m of polledMetrics.bulkhead) polled(m.name, m.help, all, m.value, m.counter);
      const rejections = meter.createCounter('tripswitch_bulkhead_rejections', {
        description: 'Calls rejected, by reason',
      });
      return (name, b) => {
        all.set(name, b);
        zero(rejections, name, 'reason', bulkheadRejectionReasons);
        const s = b.on('rejected', (e) => rejections.add(1, { policy: name, reason: e.reason }));
        return () => {
          s.dispose();
          all.delete(name);
        };
      };
    },
    rateLimiter: () => {
      const all = new Map<string, RateLimiterPolicy>();
      for (const m of polledMetrics.rateLimiter) polled(m.name, m.help, all, m.value, m.counter);
      const rejections = meter.createCounter('tripswitch_rate_limiter_rejections', {
        description: 'Calls rejected for want of a token',
      });
      return (name, l) => {
        all.set(name, l);
        zero(rejections, name);
        const s = l.on('rejected', () => rejections.add(1, { policy: name }));
        return () => {
          s.dispose();
          all.delete(name);
        };
      };
    },
    fallback: () => {
      const served = meter.createCounter('tripswitch_fallbacks', {
        description: 'Answers the fallback gave in place of the call, by outcome',
      });
      return (name, f) => {
        zero(served, name, 'outcome', fallbackOutcomes);
        const s = f.on('fallback', (e) => served.add(1, { policy: name, outcome: e.outcome }));
        return () => s.dispose();
      };
    },
    hedge: () => {
      const all = new Map<string, HedgePolicy>();
      for (const m of polledMetrics.hedge) polled(m.name, m.help, all, m.value, m.counter);
      // No point while a percentile delay still lacks samples.
      polled(
        'tripswitch_hedge_delay',
        'The delay before an extra attempt, in ms',
        all,
        (h) => h.stats().delayMs,
      );
      return (name, h) => {
        all.set(name, h);
        return () => all.delete(name);
      };
    },
    adaptiveLimiter: () => {
      const all = new Map<string, AdaptiveLimiterPolicy>();
      for (const m of polledMetrics.adaptiveLimiter) polled(m.name, m.help, all, m.value, m.counter);
      const rejections = meter.createCounter('tripswitch_adaptive_limiter_rejections', {
        description: 'Calls rejected, by reason',
      });
      return (name, l) => {
        all.set(name, l);
        zero(rejections, name, 'reason', adaptiveLimiterRejectionReasons);
        const s = l.on('rejected', (e) => rejections.add(1, { policy: name, reason: e.reason }));
        return () => {
          s.dispose();
          all.delete(name);
        };
      };
    },
    chaos: () => {
      // Several chaos policies (one per kind of disturbance) may share a name: points carry both.
      const all = new Map<ChaosPolicy, string>();
      const rate = meter.createObservableGauge('tripswitch_chaos_injection_rate', {
        description: 'The fraction of calls the chaos policy disturbs (0 while switched off)',
      });
      const cb = (r: ObservableResult<Attributes>): void => {
        for (const [c, name] of all) r.observe(c.enabled ? c.rate : 0, { policy: name, chaos: c.chaos });
      };
      rate.addCallback(cb);
      removeCallbacks.push(() => rate.removeCallback(cb));
      const injected = meter.createCounter('tripswitch_chaos_injected', {
        description: 'Calls disturbed on purpose',
      });
      return (name, c) => {
        all.set(c, name);
        const a = { policy: name, chaos: c.chaos };
        injected.add(0, a);
        const s = c.on('injected', () => injected.add(1, a));
        return () => {
          s.dispose();
          all.delete(c);
        };
      };
    },
    writeQueue: () => {
      const all = new Map<string, WriteQueue<unknown, unknown>>();
      polled('tripswitch_write_queue_size', 'Writes waiting for replay', all, (q) => q.size, false, 'queue');
      const queued = meter.createCounter('tripswitch_write_queue_queued', {
        description: 'Writes stored for replay',
      });
      const sent = meter.createCounter('tripswitch_write_queue_sent', {
        description: 'Stored writes delivered by a replay',
      });
      const failures = meter.createCounter('tripswitch_write_queue_replay_failures', {
        description: 'Replays that failed (the write stays queued)',
      });
      const dead = meter.createCounter('tripswitch_write_queue_dead', {
        description: 'Writes dropped: not retryable, or out of attempts',
      });
      const storeErrors = meter.createCounter('tripswitch_write_queue_store_errors', {
        description: 'Store failures, by operation',
      });
      const age = meter.createHistogram('tripswitch_write_queue_age', {
        description: 'Time from queued to delivered, of writes delivered by a replay',
        unit: 's',
        advice: {
          explicitBucketBoundaries: [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
        },
      });
      return (name, q) => {
        all.set(name, q);
        const a = { queue: name };
        for (const c of [queued, sent, failures, dead]) c.add(0, a);
        for (const operation of writeQueueStoreOperations) storeErrors.add(0, { queue: name, operation });
        const s = [
          q.on('queued', () => queued.add(1, a)),
          q.on('sent', (e) => {
            sent.add(1, a);
            age.record(e.queuedMs / 1000, a);
          }),
          q.on('replayFailed', () => failures.add(1, a)),
          q.on('dead', () => dead.add(1, a)),
          q.on('storeError', (e) => storeErrors.add(1, { queue: name, operation: e.operation })),
        ];
        return () => {
          for (const x of s) x.dispose();
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
      for (const r of removeCallbacks) r();
    },
  });
}
