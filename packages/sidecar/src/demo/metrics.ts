/**
 * `/metrics` of the demo's Service A (Prometheus text): what its clients got, per route and
 * outcome, how long they waited, and its workers; for the protected A also the breaker
 * (`circuit_breaker_*`), the fallback, retry and timeout, and the write queue, through
 * `@tripswitch/prometheus`. Each A has its own prom-client registry, so two A's in one process
 * (the kept demo services) do not share series.
 *
 * @module
 */
import { prometheusMetrics, type InstrumentablePolicy } from '@tripswitch/prometheus';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BreakerRegistry } from 'tripswitch';

/** What an answer of Service A was: B's answer, the last good one, a degraded one, a queued write, or an error. */
export type Outcome = 'ok' | 'last-good' | 'degraded' | 'queued' | 'error';

/**
 * What {@link demoMetrics} needs to know about a Service A.
 *
 * @example
 * ```ts
 * const m = demoMetrics({ protected: false, load: () => pool });
 * ```
 */
export interface DemoMetricsOptions {
  protected: boolean;
  /** Busy and queued workers, read at scrape time. */
  load: () => { active: number; queued: number; size: number };
  /** Protected: the breakers to expose. */
  registry?: BreakerRegistry;
  /** Protected: policies to instrument under `policy="service-b"` (the read's fallback, retry, timeout). */
  policy?: InstrumentablePolicy;
  /** Protected: the write queue, under `queue="orders"`. */
  writes?: InstrumentablePolicy;
  /** Protected: age of the last good answer in ms (undefined before the first) and its TTL. */
  lastGood?: { ageMs: () => number | undefined; ttlMs: number };
}

/**
 * The metrics of one Service A.
 *
 * @example
 * ```ts
 * m.observe('orders', 200, 'last-good', 0.003);
 * res.end(await m.text());
 * ```
 */
export interface DemoMetrics {
  readonly contentType: string;
  observe(route: string, status: number, outcome: Outcome, seconds: number): void;
  text(): Promise<string>;
  dispose(): void;
}

/**
 * Makes the metrics of one Service A.
 *
 * @example
 * ```ts
 * const m = demoMetrics({ protected: true, registry, policy: read.policy, load: () => ({ ...pool.load(), size: 10 }) });
 * ```
 */
export function demoMetrics(options: DemoMetricsOptions): DemoMetrics {
  const register = new Registry();
  register.setDefaultLabels({ service: options.protected ? 'service-a-protected' : 'service-a-unprotected' });
  const requests = new Counter({
    name: 'demo_requests_total',
    help: "Service A's answers by route, HTTP status and outcome (ok: B's answer; last-good, degraded: fallbacks; error)",
    labelNames: ['route', 'status', 'outcome'],
    registers: [register],
  });
  const duration = new Histogram({
    name: 'demo_request_duration_seconds',
    help: "Time from a request's arrival at Service A (queue wait included) to its answer",
    labelNames: ['route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2.5, 5, 10, 30],
    registers: [register],
  });
  new Gauge({
    name: 'demo_workers',
    help: "Service A's workers by state (busy, or requests queued for one) and the pool size",
    labelNames: ['state'],
    registers: [register],
    collect() {
      const l = options.load();
      this.set({ state: 'busy' }, l.active);
      this.set({ state: 'queued' }, l.queued);
      this.set({ state: 'size' }, l.size);
    },
  });
  const lg = options.lastGood;
  if (lg !== undefined) {
    new Gauge({
      name: 'demo_last_good_age_seconds',
      help: 'Age of the last good answer from Service B (absent before the first); past the TTL the answer is degraded',
      registers: [register],
      collect() {
        const age = lg.ageMs();
        if (age === undefined) this.reset();
        else this.set(age / 1000);
      },
    });
    new Gauge({
      name: 'demo_last_good_ttl_seconds',
      help: 'How long the last good answer may be served',
      registers: [register],
    }).set(lg.ttlMs / 1000);
  }
  let tripswitch: ReturnType<typeof prometheusMetrics> | undefined;
  if (options.registry !== undefined) {
    tripswitch = prometheusMetrics({ registry: options.registry, register });
    if (options.policy !== undefined) tripswitch.instrument('service-b', options.policy);
    if (options.writes !== undefined) tripswitch.instrument('orders', options.writes);
  }
  return {
    contentType: register.contentType,
    observe(route, status, outcome, seconds) {
      requests.inc({ route, status: String(status), outcome });
      duration.observe({ route }, seconds);
    },
    text: () => register.metrics(),
    dispose() {
      tripswitch?.dispose();
      register.clear();
    },
  };
}
