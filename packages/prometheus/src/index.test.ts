import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
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
  TimeoutError,
  timeout,
  type WriteQueueStore,
  wrap,
  writeQueue,
} from 'tripswitch';
import { chaosFault, chaosLatency, isInjectedFaultError } from 'tripswitch/chaos';
import { TestClock } from 'tripswitch/testing';
import { deferred, fullExposition, sample, samples } from './fixture.test.util.js';
import { prometheusMetrics } from './index.js';

test('exposes state, calls and transitions of breakers added later', async () => {
  const registry = breakerRegistry();
  const register = new Registry();
  const m = prometheusMetrics({ registry, register });
  const b = registry.get('pay');
  await b.execute(async () => 1);
  await assert.rejects(b.execute(async () => Promise.reject(new Error('x'))));
  b.isolate();
  await assert.rejects(b.execute(async () => 1));
  const text = await register.metrics();
  assert.match(text, /circuit_breaker_state\{service="pay"\} 3/);
  assert.match(text, /circuit_breaker_failures_total\{service="pay"\} 1/);
  assert.match(text, /circuit_breaker_rejections_total\{service="pay"\} 1/);
  assert.match(text, /circuit_breaker_transitions_total\{service="pay",from="closed",to="isolated"\} 1/);
  assert.match(text, /circuit_breaker_call_duration_seconds_count\{service="pay",outcome="success"\} 1/);
  m.dispose();
  assert.equal((await register.metrics()).trim(), '');
});

test('promtool check metrics accepts the full exposition (breaker, every policy kind, a write queue)', async (t) => {
  const { spawnSync } = await import('node:child_process');
  if (spawnSync('promtool', ['--version']).error) {
    t.skip('promtool missing (apt-get install -y prometheus)');
    return;
  }
  const f = await fullExposition();
  const families = new Set(samples(f.text).map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  const registered = (await f.register.getMetricsAsJSON()).map((x) => x.name);
  assert.deepEqual([...families].sort(), registered.sort());
  assert.ok(registered.length >= 26, registered.join(' '));
  for (const n of [
    'size',
    'queued_total',
    'sent_total',
    'replay_failures_total',
    'dead_total',
    'store_errors_total',
    'age_seconds',
  ])
    assert.ok(registered.includes(`tripswitch_write_queue_${n}`), n);
  assert.ok(/tripswitch_write_queue_age_seconds_count\{queue="outbox"\} 2/.test(f.text), f.text);
  assert.ok(/tripswitch_write_queue_size\{queue="outbox"\} 1/.test(f.text), f.text);
  const r = spawnSync('promtool', ['check', 'metrics'], { input: f.text, timeout: 10_000 });
  f.dispose();
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  // The check can fail: a counter without the _total suffix is reported.
  const bad = spawnSync('promtool', ['check', 'metrics'], {
    input: '# HELP x_count_things c\n# TYPE x_count_things counter\nx_count_things 1\n',
    timeout: 10_000,
  });
  assert.notEqual(bad.status, 0);
});

test('retry: retries and give-ups by reason, counted until the handle is disposed', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const r = retry({
    maxAttempts: 3,
    backoff: constantBackoff(10),
    clock,
    shouldRetry: (e) => (e as Error).message !== 'fatal',
  });
  const h = m.instrument('api', r);
  let n = 0;
  const flaky = r.execute(async () => {
    if (++n < 3) throw new Error('flaky');
    return n;
  });
  const down = r.execute(async () => Promise.reject(new Error('down')));
  await clock.advanceAsync(20);
  assert.equal(await flaky, 3);
  await assert.rejects(down, /down/);
  await assert.rejects(
    r.execute(async () => Promise.reject(new Error('fatal'))),
    /fatal/,
  );
  let text = await register.metrics();
  assert.doesNotMatch(text, /circuit_breaker/);
  assert.equal(sample(text, 'tripswitch_retries_total', { policy: 'api' }), 4);
  const giveUps = (reason: string) =>
    sample(text, 'tripswitch_retry_giveups_total', { policy: 'api', reason });
  assert.equal(giveUps('max-attempts'), 1);
  assert.equal(giveUps('not-retryable'), 1);
  assert.equal(giveUps('budget'), 0);
  h.dispose();
  h.dispose();
  const after = r.execute(async () => Promise.reject(new Error('down')));
  await clock.advanceAsync(20);
  await assert.rejects(after);
  text = await register.metrics();
  assert.doesNotMatch(text, /policy="api"/);
  m.instrument('api', r);
  assert.equal(sample(await register.metrics(), 'tripswitch_retries_total', { policy: 'api' }), 0);
  m.dispose();
  assert.equal((await register.metrics()).trim(), '');
});

test('timeout: timeouts counted, pending read at scrape time', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register, prefix: 'app_' });
  const t = timeout({ ms: 100, clock });
  m.instrument('db', t);
  const slow = t.execute(
    ({ signal }) => new Promise((_, rej) => signal.addEventListener('abort', () => rej(signal.reason))),
  );
  clock.advance(50);
  const quick = deferred<number>();
  const fast = t.execute(() => quick.promise);
  let text = await register.metrics();
  assert.equal(sample(text, 'app_tripswitch_timeout_pending', { policy: 'db' }), 2);
  assert.equal(sample(text, 'app_tripswitch_timeouts_total', { policy: 'db' }), 0);
  clock.advance(50);
  await assert.rejects(slow, TimeoutError);
  text = await register.metrics();
  assert.equal(sample(text, 'app_tripswitch_timeouts_total', { policy: 'db' }), 1);
  assert.equal(sample(text, 'app_tripswitch_timeout_pending', { policy: 'db' }), 1);
  quick.resolve(1);
  assert.equal(await fast, 1);
  text = await register.metrics();
  assert.equal(sample(text, 'app_tripswitch_timeout_pending', { policy: 'db' }), 0);
  assert.equal(sample(text, 'app_tripswitch_timeouts_total', { policy: 'db' }), 1);
  m.dispose();
});

test('bulkhead: active, queued, capacity, executed and rejections by reason', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const b = bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 100, clock });
  m.instrument('pool', b);
  const hold = deferred();
  const running = b.execute(() => hold.promise);
  const waiting = b.execute(async () => 1);
  await assert.rejects(
    b.execute(async () => 1),
    isBulkheadRejectedError,
  );
  const v = (text: string, n: string, reason?: string) =>
    sample(text, `tripswitch_bulkhead_${n}`, reason ? { policy: 'pool', reason } : { policy: 'pool' });
  let text = await register.metrics();
  assert.equal(v(text, 'active'), 1);
  assert.equal(v(text, 'queued'), 1);
  assert.equal(v(text, 'max_concurrent'), 1);
  assert.equal(v(text, 'max_queue'), 1);
  assert.equal(v(text, 'executed_total'), 1);
  assert.equal(v(text, 'rejections_total', 'full'), 1);
  assert.equal(v(text, 'rejections_total', 'queue-timeout'), 0);
  clock.advance(100);
  await assert.rejects(waiting, isBulkheadRejectedError);
  text = await register.metrics();
  assert.equal(v(text, 'queued'), 0);
  assert.equal(v(text, 'rejections_total', 'queue-timeout'), 1);
  hold.resolve();
  await running;
  await b.execute(async () => 1);
  text = await register.metrics();
  assert.equal(v(text, 'active'), 0);
  assert.equal(v(text, 'executed_total'), 2);
  m.dispose();
});

test('rate limiter and fallback, instrumented through a wrap() that holds a breaker', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const limiter = rateLimiter({ rate: 1, per: 1_000, burst: 1, clock });
  const fb = fallback({ value: 'cached' });
  const policy = wrap(fb, circuitBreaker({ name: 'quota-api', clock }), limiter);
  m.instrument('quota', policy);
  assert.equal(await policy.execute(async () => 'live'), 'live');
  assert.equal(await policy.execute(async () => 'live'), 'cached');
  clock.advance(500);
  let text = await register.metrics();
  assert.equal(sample(text, 'tripswitch_rate_limiter_rejections_total', { policy: 'quota' }), 1);
  assert.equal(sample(text, 'tripswitch_rate_limiter_tokens', { policy: 'quota' }), 0.5);
  assert.equal(sample(text, 'tripswitch_fallbacks_total', { policy: 'quota', outcome: 'rateLimited' }), 1);
  assert.equal(sample(text, 'tripswitch_fallbacks_total', { policy: 'quota', outcome: 'failure' }), 0);
  clock.advance(500);
  assert.equal(await policy.execute(async () => Promise.reject(new Error('x'))), 'cached');
  text = await register.metrics();
  assert.equal(sample(text, 'tripswitch_fallbacks_total', { policy: 'quota', outcome: 'failure' }), 1);
  assert.doesNotMatch(text, /circuit_breaker|quota-api/);
  m.dispose();
});

test('instrument: kinds are recognised; breakers, strangers and duplicates are refused', () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  assert.throws(() => m.instrument('b', circuitBreaker({ name: 'b', clock }) as never), /registry/);
  assert.throws(() => m.instrument('x', { execute: async () => 1 } as never), TypeError);
  assert.throws(() => m.instrument('', retry()), TypeError);
  m.instrument('api', retry());
  // The timeout of this wrap is attached first, then the duplicate retry throws: nothing stays attached.
  assert.throws(() => m.instrument('api', wrap(timeout({ ms: 1 }), retry())), /already instrumented/);
  m.instrument('api', timeout({ ms: 1 }));
  m.instrument('other', retry());
  m.dispose();
  assert.throws(() => m.instrument('late', retry()), /disposed/);
});

/** A downstream for write-queue tests: `mode` says how the next sends answer. */
function outboxDownstream() {
  const d = {
    mode: 'up' as 'up' | 'down' | 'fatal',
    send: async (data: string): Promise<string> => {
      if (d.mode === 'down') throw new Error(`down (${data})`);
      if (d.mode === 'fatal') throw new Error(`fatal (${data})`);
      return `ok:${data}`;
    },
  };
  return d;
}

test('write queue: size at scrape time, queued / sent / replay failures / dead / store errors, age of delivered writes', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const breaker = circuitBreaker({
    name: 'orders',
    clock,
    trip: { kind: 'consecutive', threshold: 1 },
    openDuration: 5_000,
  });
  const ds = outboxDownstream();
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
    send: ds.send,
    store,
    breaker,
    clock,
    backoff: constantBackoff(100),
    retryable: (e) => !(e as Error).message.startsWith('fatal'),
  });
  const h = m.instrument('outbox', q);
  const v = (text: string, n: string, extra: Record<string, string> = {}) =>
    sample(text, `tripswitch_write_queue_${n}`, { queue: 'outbox', ...extra });

  let text = await register.metrics();
  for (const n of [
    'size',
    'queued_total',
    'sent_total',
    'replay_failures_total',
    'dead_total',
    'age_seconds_count',
  ])
    assert.equal(v(text, n), 0, n);
  for (const operation of ['load', 'remove', 'close'])
    assert.equal(v(text, 'store_errors_total', { operation }), 0, operation);
  assert.doesNotMatch(text, /policy=/);

  // t=0: the first attempt fails and opens the breaker; the second write goes behind the first.
  ds.mode = 'down';
  assert.equal((await q.submit('a')).status, 'queued');
  assert.equal(breaker.state, 'open');
  assert.equal((await q.submit('b')).status, 'queued');
  text = await register.metrics();
  assert.equal(v(text, 'size'), 2);
  assert.equal(v(text, 'queued_total'), 2);
  assert.equal(v(text, 'replay_failures_total'), 0);

  // t=5s: the first replay is the breaker's probe, and fails.
  await clock.advanceAsync(5_000);
  text = await register.metrics();
  assert.equal(v(text, 'replay_failures_total'), 1);
  assert.equal(v(text, 'size'), 2);
  assert.equal(v(text, 'sent_total'), 0);

  // t=10s: the next probe succeeds and both writes go, each 10 s after it was queued.
  ds.mode = 'up';
  await clock.advanceAsync(5_000);
  assert.equal(breaker.state, 'closed');
  text = await register.metrics();
  assert.equal(v(text, 'size'), 0);
  assert.equal(v(text, 'sent_total'), 2);
  assert.equal(v(text, 'age_seconds_count'), 2);
  assert.equal(v(text, 'age_seconds_sum'), 20);
  assert.equal(v(text, 'age_seconds_bucket', { le: '5' }), 0);
  assert.equal(v(text, 'age_seconds_bucket', { le: '10' }), 2);
  assert.equal(v(text, 'age_seconds_bucket', { le: '14400' }), 2);
  assert.equal(v(text, 'dead_total'), 0);

  // A write whose replay fails for good is dropped; its removal from the store fails.
  ds.mode = 'down';
  assert.equal((await q.submit('c')).status, 'queued');
  ds.mode = 'fatal';
  failRemove = true;
  await clock.advanceAsync(5_000);
  text = await register.metrics();
  assert.equal(v(text, 'dead_total'), 1);
  assert.equal(v(text, 'store_errors_total', { operation: 'remove' }), 1);
  assert.equal(v(text, 'store_errors_total', { operation: 'load' }), 0);
  assert.equal(v(text, 'queued_total'), 3);
  assert.equal(v(text, 'sent_total'), 2);
  assert.equal(v(text, 'size'), 0);

  // The handle's dispose() detaches the listeners and drops the series; the families stay.
  h.dispose();
  h.dispose();
  failRemove = false;
  ds.mode = 'down';
  clock.advance(5_000);
  assert.equal((await q.submit('d')).status, 'queued');
  text = await register.metrics();
  assert.doesNotMatch(text, /queue="outbox"/);
  assert.match(text, /# TYPE tripswitch_write_queue_queued_total counter/);
  m.instrument('outbox', q);
  text = await register.metrics();
  assert.equal(v(text, 'queued_total'), 0);
  assert.equal(v(text, 'size'), 1);
  m.dispose();
  assert.equal((await register.metrics()).trim(), '');
  await q.close();
});

test('write queue: subscriptions end with the handle and with the metrics; duplicates refused', async () => {
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const q = writeQueue({ send: async (s: string) => s, store: memoryWriteStore<string>() });
  // Counts the queue's live subscriptions.
  let live = 0;
  const on = q.on.bind(q);
  Object.defineProperty(q, 'on', {
    value: ((event, listener) => {
      const s = on(event, listener);
      live++;
      let done = false;
      const dispose = () => {
        if (!done) live--;
        done = true;
        s.dispose();
      };
      return { dispose, [Symbol.dispose]: dispose };
    }) satisfies typeof q.on,
  });
  const h = m.instrument('a', q);
  assert.equal(live, 5);
  assert.throws(() => m.instrument('a', q), /a writeQueue named "a" is already instrumented/);
  assert.equal(live, 5);
  h.dispose();
  assert.equal(live, 0);
  m.instrument('a', q);
  m.instrument('b', q);
  m.instrument('a', retry()); // another kind under the same name
  assert.equal(live, 10);
  assert.throws(() => m.instrument('x', { kind: 'writeQueue' } as never), TypeError);
  m.dispose();
  assert.equal(live, 0);
  await q.close();
});

test('hedge, adaptive limiter and chaos: counts, limit, rejections by reason, injection by kind', async () => {
  const clock = new TestClock();
  const register = new Registry();
  const m = prometheusMetrics({ register });
  const h = hedge({ idempotent: true, delayMs: 10, clock });
  const limiter = adaptiveLimiter({ initialLimit: 1, clock });
  const faults = chaosFault({ rate: 1, enabled: false });
  const slow = chaosLatency({ rate: 0.25, latencyMs: 1, clock });
  m.instrument('reads', wrap(h, limiter, faults, slow));
  // Two chaos policies under one name are told apart by their kind; a second fault under it is refused.
  assert.throws(() => m.instrument('reads', chaosFault({ rate: 1 })), /already instrumented/);
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
  const text = await register.metrics();
  const v = (n: string, labels: Record<string, string> = {}) =>
    sample(text, n, { policy: 'reads', ...labels });
  assert.equal(v('tripswitch_hedge_calls_total'), 1);
  assert.equal(v('tripswitch_hedges_total'), 1);
  assert.equal(v('tripswitch_hedge_wins_total'), 1);
  assert.equal(v('tripswitch_hedge_budget_exhausted_total'), 0);
  assert.equal(v('tripswitch_hedge_delay_seconds'), 0.01);
  assert.equal(v('tripswitch_adaptive_limit'), 1);
  assert.equal(v('tripswitch_adaptive_limiter_active'), 1);
  assert.equal(v('tripswitch_adaptive_limiter_rejections_total', { reason: 'full' }), 1);
  assert.equal(v('tripswitch_adaptive_limiter_rejections_total', { reason: 'queue-timeout' }), 0);
  assert.equal(v('tripswitch_chaos_injected_total', { chaos: 'fault' }), 1);
  assert.equal(v('tripswitch_chaos_injected_total', { chaos: 'latency' }), 0);
  assert.equal(v('tripswitch_chaos_injection_rate', { chaos: 'fault' }), 1);
  assert.equal(v('tripswitch_chaos_injection_rate', { chaos: 'latency' }), 0.25);
  slow.enabled = false;
  assert.equal(
    sample(await register.metrics(), 'tripswitch_chaos_injection_rate', {
      policy: 'reads',
      chaos: 'latency',
    }),
    0,
  );
  hold.resolve();
  await running;
  first.resolve(1);
  m.dispose();
  assert.equal((await register.metrics()).includes('policy="reads"'), false, 'series dropped on dispose');
});
