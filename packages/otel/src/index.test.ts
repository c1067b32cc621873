import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { breakerRegistry } from 'tripswitch';
import { otelMetrics } from './index.js';

class Reader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

test('state gauge, calls and transitions', async () => {
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const registry = breakerRegistry();
  const m = otelMetrics({ registry, meter: provider.getMeter('t') });
  const b = registry.get('pay');
  await b.execute(async () => 1);
  b.isolate();
  const { resourceMetrics } = await reader.collect();
  const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  const get = (n: string) => all.find((x) => x.descriptor.name === n);
  assert.equal(get('circuit_breaker_state')?.dataPoints[0]?.value, 3);
  assert.equal(get('circuit_breaker_calls')?.dataPoints[0]?.value, 1);
  assert.deepEqual(get('circuit_breaker_transitions')?.dataPoints[0]?.attributes, {
    service: 'pay',
    from: 'closed',
    to: 'isolated',
  });
  m.dispose();
  await provider.shutdown();
});
