import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  adaptiveLimiter,
  breakerRegistry,
  bulkhead,
  circuitBreaker,
  constantBackoff,
  fallback,
  hedge,
  isBulkheadRejectedError,
  isConcurrencyLimitError,
  memoryWriteStore,
  rateLimiter,
  retry,
  timeout,
  type WriteQueueStore,
  wrap,
  writeQueue,
} from 'tripswitch';
import { chaosFault, chaosLatency, isInjectedFaultError } from 'tripswitch/chaos';
import { TestClock } from 'tripswitch/testing';
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

/** Collects and returns the value of the one point of `name` whose attributes include `attrs`. */
async function collector(reader: Reader) {
  const { resourceMetrics } = await reader.collect();
  const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
  return {
    names: all.map((x) => x.descriptor.name),
    points(name: string, attrs: Record<string, string> = {}) {
      return (all.find((x) => x.descriptor.name === name)?.dataPoints ?? []).filter((p) =>
        Object.entries(attrs).every(([k, v]) => p.attributes[k] === v),
      );
    },
    value(name: string, attrs: Record<string, string> = {}): unknown {
      const hits = this.points(name, attrs);
      if (hits.length !== 1) throw new Error(`${hits.length} points of ${name} ${JSON.stringify(attrs)}`);
      return hits[0]!.value;
    },
  };
}

function deferred<T = void>(): { promise: Promise<T>; resolve(v: T): void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

test('policy instruments: retry, timeout, bulkhead, rate limiter, fallback (in-memory reader)', async () => {
  const clock = new TestClock();
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const m = otelMetrics({ meter: provider.getMeter('t') });
  const r = retry({ maxAttempts: 2, backoff: constantBackoff(10), clock });
  const t = timeout({ ms: 100, clock });
  const fb = fallback({ value: 'stale' });
  const api = wrap(fb, circuitBreaker({ name: 'api-breaker', clock }), r, t);
  const apiHandle = m.instrument('api', api);
  const pool = bulkhead({ maxConcurrent: 1, maxQueue: 0, clock });
  m.instrument('pool', pool);
  const quota = rateLimiter({ rate: 1, burst: 1, clock });
  m.instrument('quota', quota);

  // Both attempts time out; the retry gives up; the fallback answers.
  const answered = api.execute(
    ({ signal }) =>
      new Promise<string>((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
  );
  await clock.advanceAsync(50);
  let c = await collector(reader);
  assert.equal(c.value('tripswitch_timeout_pending', { policy: 'api' }), 1);
  assert.equal(c.value('tripswitch_timeouts', { policy: 'api' }), 0);
  await clock.advanceAsync(50 + 10 + 100);
  assert.equal(await answered, 'stale');
  const hold = deferred();
  const running = pool.execute(() => hold.promise);
  await assert.rejects(
    pool.execute(async () => 1),
    isBulkheadRejectedError,
  );
  await quota.execute(async () => 1);
  await assert.rejects(
    quota.execute(async () => 1),
    /rate/i,
  );

  c = await collector(reader);
  assert.equal(c.value('tripswitch_retries', { policy: 'api' }), 1);
  assert.equal(c.value('tripswitch_retry_giveups', { policy: 'api', reason: 'max-attempts' }), 1);
  assert.equal(c.value('tripswitch_retry_giveups', { policy: 'api', reason: 'budget' }), 0);
  assert.equal(c.value('tripswitch_timeouts', { policy: 'api' }), 2);
  assert.equal(c.value('tripswitch_timeout_pending', { policy: 'api' }), 0);
  assert.equal(c.value('tripswitch_fallbacks', { policy: 'api', outcome: 'timeout' }), 1);
  assert.equal(c.value('tripswitch_fallbacks', { policy: 'api', outcome: 'open' }), 0);
  assert.equal(c.value('tripswitch_bulkhead_active', { policy: 'pool' }), 1);
  assert.equal(c.value('tripswitch_bulkhead_queued', { policy: 'pool' }), 0);
  assert.equal(c.value('tripswitch_bulkhead_max_concurrent', { policy: 'pool' }), 1);
  assert.equal(c.value('tripswitch_bulkhead_executed', { policy: 'pool' }), 1);
  assert.equal(c.value('tripswitch_bulkhead_rejections', { policy: 'pool', reason: 'full' }), 1);
  assert.equal(c.value('tripswitch_rate_limiter_rejections', { policy: 'quota' }), 1);
  assert.equal(c.value('tripswitch_rate_limiter_tokens', { policy: 'quota' }), 0);
  assert.ok(!c.names.some((n) => n.startsWith('circuit_breaker')), 'no registry: no breaker instruments');
  hold.resolve();
  await running;

  // A disposed handle stops counting and observing; the others go on.
  apiHandle.dispose();
  const late = api.execute(async () => Promise.reject(new Error('x')));
  await clock.advanceAsync(10);
  assert.equal(await late, 'stale');
  clock.advance(1_000);
  const stuck = deferred();
  const pending = t.execute(() => stuck.promise);
  c = await collector(reader);
  assert.equal(c.value('tripswitch_retries', { policy: 'api' }), 1);
  assert.equal(c.value('tripswitch_fallbacks', { policy: 'api', outcome: 'failure' }), 0);
  // The SDK may keep the last observed point of an asynchronous instrument; it must not see the new call.
  assert.ok(!c.points('tripswitch_timeout_pending', { policy: 'api' }).some((p) => p.value === 1));
  stuck.resolve();
  await pending;
  assert.equal(c.value('tripswitch_bulkhead_active', { policy: 'pool' }), 0);
  assert.equal(c.value('tripswitch_rate_limiter_tokens', { policy: 'quota' }), 1);
  assert.throws(() => m.instrument('pool', bulkhead({ maxConcurrent: 2 })), /already instrumented/);
  assert.throws(() => m.instrument('b', circuitBreaker({ name: 'b', clock }) as never), /registry/);
  m.dispose();
  const hold2 = deferred();
  const running2 = pool.execute(() => hold2.promise);
  c = await collector(reader);
  assert.ok(!c.points('tripswitch_bulkhead_active').some((p) => p.value === 1));
  hold2.resolve();
  await running2;
  await provider.shutdown();
});

test('write queue instruments: size observed at collection, counters, age histogram in seconds', async () => {
  const clock = new TestClock();
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const m = otelMetrics({ meter: provider.getMeter('t') });
  const breaker = circuitBreaker({
    name: 'orders',
    clock,
    trip: { kind: 'consecutive', threshold: 1 },
    openDuration: 5_000,
  });
  let mode: 'up' | 'down' | 'fatal' = 'up';
  const mem = memoryWriteStore<string>();
  let failRemove = false;
  const store: WriteQueueStore<string> = {
    ...mem,
    remove: async (id) => {
      if (failRemove) throw new Error('disk full');
      await mem.remove(id);
    },
  };
  const q = writeQueue({
    send: async (data: string) => {
      if (mode !== 'up') throw new Error(`${mode} (${data})`);
      return data;
    },
    store,
    breaker,
    clock,
    backoff: constantBackoff(100),
    retryable: (e) => !(e as Error).message.startsWith('fatal'),
  });
  const h = m.instrument('outbox', q);
  assert.throws(() => m.instrument('outbox', q), /a writeQueue named "outbox" is already instrumented/);
  const v = (c: Awaited<ReturnType<typeof collector>>, n: string, extra: Record<string, string> = {}) =>
    c.value(`tripswitch_write_queue_${n}`, { queue: 'outbox', ...extra });

  let c = await collector(reader);
  for (const n of ['size', 'queued', 'sent', 'replay_failures', 'dead']) assert.equal(v(c, n), 0, n);
  for (const operation of ['load', 'remove', 'close'])
    assert.equal(v(c, 'store_errors', { operation }), 0, operation);
  assert.equal(c.points('tripswitch_write_queue_age').length, 0, 'nothing delivered yet');

  // t=0: two writes queued (the first attempt opens the breaker); t=5s: the probe replay fails;
  // t=10s: both are delivered, 10 s after they were queued.
  mode = 'down';
  assert.equal((await q.submit('a')).status, 'queued');
  assert.equal((await q.submit('b')).status, 'queued');
  c = await collector(reader);
  assert.equal(v(c, 'size'), 2);
  assert.equal(v(c, 'queued'), 2);
  await clock.advanceAsync(5_000);
  c = await collector(reader);
  assert.equal(v(c, 'replay_failures'), 1);
  assert.equal(v(c, 'sent'), 0);
  mode = 'up';
  await clock.advanceAsync(5_000);
  c = await collector(reader);
  assert.equal(v(c, 'size'), 0);
  assert.equal(v(c, 'sent'), 2);
  const age = v(c, 'age') as {
    count: number;
    sum: number;
    buckets: { boundaries: number[]; counts: number[] };
  };
  assert.equal(age.count, 2);
  assert.equal(age.sum, 20);
  assert.equal(age.buckets.boundaries.at(-1), 14_400, 'buckets up to hours');
  assert.equal(age.buckets.counts[age.buckets.boundaries.indexOf(10)], 2, 'both in the (5, 10] bucket');
  const [ageMetric] = (await reader.collect()).resourceMetrics.scopeMetrics
    .flatMap((s) => s.metrics)
    .filter((x) => x.descriptor.name === 'tripswitch_write_queue_age');
  assert.equal(ageMetric?.descriptor.unit, 's');

  // A write dropped for good, whose removal from the store fails.
  mode = 'down';
  assert.equal((await q.submit('c')).status, 'queued');
  mode = 'fatal';
  failRemove = true;
  await clock.advanceAsync(5_000);
  c = await collector(reader);
  assert.equal(v(c, 'dead'), 1);
  assert.equal(v(c, 'store_errors', { operation: 'remove' }), 1);
  assert.equal(v(c, 'store_errors', { operation: 'load' }), 0);
  assert.equal(v(c, 'queued'), 3);

  // A disposed handle stops counting and observing.
  h.dispose();
  failRemove = false;
  mode = 'down';
  clock.advance(5_000);
  assert.equal((await q.submit('d')).status, 'queued');
  assert.equal(q.size, 1);
  c = await collector(reader);
  assert.equal(v(c, 'queued'), 3);
  assert.ok(!c.points('tripswitch_write_queue_size', { queue: 'outbox' }).some((p) => p.value === 1));
  // Instrumented again under another name, then the metrics' dispose() ends it.
  m.instrument('outbox-2', q);
  assert.equal((await q.submit('e')).status, 'queued');
  c = await collector(reader);
  assert.equal(c.value('tripswitch_write_queue_queued', { queue: 'outbox-2' }), 1);
  assert.equal(c.value('tripswitch_write_queue_size', { queue: 'outbox-2' }), 2);
  m.dispose();
  assert.equal((await q.submit('f')).status, 'queued');
  c = await collector(reader);
  assert.equal(c.value('tripswitch_write_queue_queued', { queue: 'outbox-2' }), 1);
  assert.ok(!c.points('tripswitch_write_queue_size', { queue: 'outbox-2' }).some((p) => p.value === 3));
  await q.close();
  await provider.shutdown();
});

test('hedge, adaptive limiter and chaos instruments (in-memory reader)', async () => {
  const clock = new TestClock();
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const m = otelMetrics({ meter: provider.getMeter('t') });
  const h = hedge({ idempotent: true, delayMs: 10, clock });
  const limiter = adaptiveLimiter({ initialLimit: 1, clock });
  const faults = chaosFault({ rate: 1, enabled: false });
  const slow = chaosLatency({ rate: 0.25, latencyMs: 1, clock });
  m.instrument('reads', wrap(h, limiter, faults, slow));
  assert.throws(() => m.instrument('reads', chaosFault({ rate: 1 })), /already instrumented/);
  const learning = hedge({ idempotent: true, percentile: 90, clock });
  m.instrument('learning', learning);
  const first = deferred<number>();
  const call = h.execute(({ hedgeAttempt }) => (hedgeAttempt === 1 ? first.promise : 2));
  await clock.advanceAsync(10);
  assert.equal(await call, 2);
  const hold = deferred();
  const running = limiter.execute(() => hold.promise);
  await assert.rejects(
    limiter.execute(async () => 1),
    isConcurrencyLimitError,
  );
  faults.enabled = true;
  await assert.rejects(
    faults.execute(async () => 1),
    isInjectedFaultError,
  );
  const c = await collector(reader);
  const v = (n: string, a: Record<string, string> = {}) => c.value(n, { policy: 'reads', ...a });
  assert.equal(v('tripswitch_hedge_calls'), 1);
  assert.equal(v('tripswitch_hedges'), 1);
  assert.equal(v('tripswitch_hedge_wins'), 1);
  assert.equal(v('tripswitch_hedge_budget_exhausted'), 0);
  assert.equal(v('tripswitch_hedge_delay'), 10);
  assert.equal(
    c.points('tripswitch_hedge_delay').some((p) => p.attributes.policy === 'learning'),
    false,
    'no delay point before a percentile delay is known',
  );
  assert.equal(v('tripswitch_adaptive_limit'), 1);
  assert.equal(v('tripswitch_adaptive_limiter_active'), 1);
  assert.equal(v('tripswitch_adaptive_limiter_rejections', { reason: 'full' }), 1);
  assert.equal(v('tripswitch_adaptive_limiter_rejections', { reason: 'queue-timeout' }), 0);
  assert.equal(v('tripswitch_chaos_injected', { chaos: 'fault' }), 1);
  assert.equal(v('tripswitch_chaos_injected', { chaos: 'latency' }), 0);
  assert.equal(v('tripswitch_chaos_injection_rate', { chaos: 'fault' }), 1);
  assert.equal(v('tripswitch_chaos_injection_rate', { chaos: 'latency' }), 0.25);
  hold.resolve();
  await running;
  first.resolve(1);
  m.dispose();
  await provider.shutdown();
});
