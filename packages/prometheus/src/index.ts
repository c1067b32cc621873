import { Counter, Gauge, Histogram, type Registry, register as defaultRegister } from 'prom-client';
import type { BreakerRegistry, CircuitBreaker, CircuitState } from 'tripswitch';

/** Numeric value of `circuit_breaker_state`: 0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled, 5 metrics-only. */
export const stateValue: Record<CircuitState, number> = {
  closed: 0,
  open: 1,
  'half-open': 2,
  isolated: 3,
  disabled: 4,
  'metrics-only': 5,
};

/** Options of {@link prometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /** Breakers to follow, including ones added later. */
  registry: BreakerRegistry;
  /** @default prom-client's global register */
  register?: Registry;
  /** @default '' */
  prefix?: string;
}

/**
 * Exposes breaker metrics of a registry through prom-client. Returns a disposable.
 *
 * @example
 * const m = prometheusMetrics({ registry });
 * m.dispose();
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): {
  dispose(): void;
  [Symbol.dispose](): void;
} {
  const reg = options.register ?? defaultRegister;
  const p = options.prefix ?? '';
  const breakers = options.registry;
  const names: string[] = [];
  const mk = <T>(m: T & { name?: string }, n: string): T => {
    names.push(p + n);
    return m;
  };
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
  const subs = new Map<CircuitBreaker, { dispose(): void }[]>();
  const follow = (b: CircuitBreaker): void => {
    if (subs.has(b)) return;
    subs.set(b, [
      b.on('success', (e) => duration.observe({ service: e.name, outcome: 'success' }, e.duration / 1000)),
      b.on('failure', (e) => duration.observe({ service: e.name, outcome: 'failure' }, e.duration / 1000)),
      b.on('stateChange', (e) => transitions.inc({ service: e.name, from: e.from, to: e.to })),
    ]);
  };
  for (const b of breakers) follow(b);
  const regSubs = [
    breakers.on('added', (e) => follow(e.breaker)),
    breakers.on('removed', (e) => {
      for (const s of subs.get(e.breaker) ?? []) s.dispose();
      subs.delete(e.breaker);
    }),
  ];
  const dispose = (): void => {
    for (const l of subs.values()) for (const s of l) s.dispose();
    for (const s of regSubs) s.dispose();
    subs.clear();
    for (const n of names) reg.removeSingleMetric(n);
  };
  return { dispose, [Symbol.dispose]: dispose };
}
