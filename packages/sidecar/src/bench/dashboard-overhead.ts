/**
 * `node packages/sidecar/dist/bench/dashboard-overhead.js`: the cost per call of a breaker being
 * followed by a dashboard (`keepHistory`, the default) against the same breaker unobserved.
 * One process, interleaved rounds of BENCH_CALLS calls (default 1,000,000; one in 50 fails),
 * median of BENCH_ROUNDS (default 7) reported. In-process and CPU-bound: run it on an idle machine.
 * @module
 */
import { circuitBreaker } from 'tripswitch';
import { createDashboardHandler } from '../dashboard/index.js';

const calls = Number(process.env.BENCH_CALLS ?? 1_000_000);
const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 7));
const trip = { kind: 'time', windowMs: 10_000, minimumCalls: 1e9, failureRateThreshold: 1 } as const;
const failure = new Error('x');

function run(b: ReturnType<typeof circuitBreaker>): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) {
    const p = b.tryAcquire()!;
    if (i % 50 === 0) p.failure(failure);
    else p.success();
  }
  return Number(process.hrtime.bigint() - t0) / calls;
}

const plain = circuitBreaker({ name: 'plain', trip });
const followed = circuitBreaker({ name: 'followed', trip });
const dashboard = createDashboardHandler({ breakers: () => [['followed', followed]] });
const a: number[] = [];
const b: number[] = [];
for (let r = 0; r < rounds; r++) {
  a.push(run(plain));
  b.push(run(followed));
}
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
console.log(
  `unobserved ${median(a).toFixed(0)} ns/call, followed by the dashboard ${median(b).toFixed(0)} ns/call ` +
    `(median of ${rounds} interleaved rounds of ${calls} calls)`,
);
dashboard.dispose();
