import { type Meter, metrics } from '@opentelemetry/api';
import type { BreakerRegistry, CircuitBreaker, CircuitState } from 'tripswitch';

const stateValue: Record<CircuitState, number> = {
  closed: 0,
  open: 1,
  'half-open': 2,
  isolated: 3,
  disabled: 4,
  'metrics-only': 5,
};

/** Options of {@link otelMetrics}. */
export interface OtelMetricsOptions {
  /** Breakers to follow, including ones added later. */
  registry: BreakerRegistry;
  /** @default metrics.getMeter('tripswitch') */
  meter?: Meter;
}

/**
 * Records breaker metrics through `@opentelemetry/api`. Returns a disposable.
 *
 * @example
 * const m = otelMetrics({ registry });
 * m.dispose();
 */
export function otelMetrics(options: OtelMetricsOptions): { dispose(): void; [Symbol.dispose](): void } {
  const meter = options.meter ?? metrics.getMeter('tripswitch');
  const breakers = options.registry;
  const state = meter.createObservableGauge('circuit_breaker_state', {
    description: '0 closed, 1 open, 2 half-open, 3 isolated, 4 disabled, 5 metrics-only',
  });
  const cb = (r: { observe(v: number, a: Record<string, string>): void }): void => {
    for (const b of breakers) r.observe(stateValue[b.state], { service: b.name });
  };
  state.addCallback(cb);
  const calls = meter.createCounter('circuit_breaker_calls', { description: 'Calls by outcome' });
  const duration = meter.createHistogram('circuit_breaker_call_duration', { unit: 'ms' });
  const transitions = meter.createCounter('circuit_breaker_transitions');
  const subs = new Map<CircuitBreaker, { dispose(): void }[]>();
  const follow = (b: CircuitBreaker): void => {
    if (subs.has(b)) return;
    subs.set(b, [
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
    state.removeCallback(cb);
    for (const l of subs.values()) for (const s of l) s.dispose();
    for (const s of regSubs) s.dispose();
    subs.clear();
  };
  return { dispose, [Symbol.dispose]: dispose };
}
