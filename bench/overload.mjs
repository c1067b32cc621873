#!/usr/bin/env node
// Adaptive limiter under overload (issue 17): goodput and p99 of an adaptiveLimiter against fixed
// bulkheads that are too large, too small and right-sized, in front of the same simulated server.
//
//   node bench/overload.mjs [--quick]     prints a Markdown table and one `@@json {rows}` line
//
// The run is a simulation on the TestClock (virtual time), so its numbers depend on the model and
// the policies, not on this machine's speed or load, and repeat exactly:
// - the server has a knee of 10 concurrent requests of 10 ms each (1,000 requests/s); a request
//   admitted with n > 10 in flight takes 10 ms * n / 10 (the workers are shared);
// - 2 calls arrive every ms (2,000/s, twice the capacity), open loop, for 10 s (2 s with --quick);
// - every policy has a queue of 50 with a 50 ms queue timeout;
// - goodput counts calls answered within 100 ms of arrival (the callers' deadline), per second;
//   p99 is over every answered call, from arrival (queue wait included).
import { adaptiveLimiter, bulkhead } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';

const quick = process.argv.includes('--quick');
const seconds = quick ? 2 : 10;
const KNEE = 10;
const SERVICE_MS = 10;
const PER_MS = 2;
const DEADLINE_MS = 100;

const pct = (xs, p) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};

async function simulate(make) {
  const clock = new TestClock(0);
  const policy = make(clock);
  let inFlight = 0;
  const server = () => {
    const n = ++inFlight;
    const ms = SERVICE_MS * Math.max(1, n / KNEE);
    return new Promise((resolve) =>
      clock.setTimeout(() => {
        inFlight--;
        resolve();
      }, ms),
    );
  };
  const latencies = [];
  let rejected = 0;
  let calls = 0;
  for (let t = 0; t < seconds * 1_000; t++) {
    for (let i = 0; i < PER_MS; i++) {
      calls++;
      const t0 = clock.now();
      policy.execute(server).then(
        () => latencies.push(clock.now() - t0),
        () => rejected++,
      );
    }
    await clock.advanceAsync(1);
  }
  await clock.advanceAsync(5_000);
  const good = latencies.filter((x) => x <= DEADLINE_MS).length;
  return {
    goodputPerS: Math.round(good / seconds),
    answeredPerS: Math.round(latencies.length / seconds),
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    rejectedPct: Number(((100 * rejected) / calls).toFixed(1)),
    limit: policy.stats().limit ?? policy.stats().maxConcurrent,
  };
}

const queue = { maxQueue: 50, queueTimeoutMs: 50 };
export const variants = [
  [
    'adaptiveLimiter (initialLimit 4, windowMs 100)',
    (clock) => adaptiveLimiter({ initialLimit: 4, windowMs: 100, ...queue, clock }),
  ],
  ['bulkhead 200 (too large)', (clock) => bulkhead({ maxConcurrent: 200, ...queue, clock })],
  ['bulkhead 3 (too small)', (clock) => bulkhead({ maxConcurrent: 3, ...queue, clock })],
  ['bulkhead 10 (the knee, known in advance)', (clock) => bulkhead({ maxConcurrent: 10, ...queue, clock })],
];

export async function run() {
  const rows = [];
  for (const [name, make] of variants) rows.push({ name, ...(await simulate(make)) });
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await run();
  const ms = (x) => (Number.isNaN(x) ? 'n/a' : `${Math.round(x)} ms`);
  const out = [
    `Simulated (TestClock) server: knee ${KNEE} concurrent x ${SERVICE_MS} ms, offered ${PER_MS * 1_000}/s (2x capacity) for ${seconds} s; queue 50, queue timeout 50 ms; goodput = answered within ${DEADLINE_MS} ms.`,
    '',
    '| policy | goodput /s | answered /s | p50 | p99 | rejected | final limit |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.goodputPerS} | ${r.answeredPerS} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.rejectedPct}% | ${r.limit} |`,
    ),
  ];
  console.log(out.join('\n'));
  console.log(`@@json ${JSON.stringify(rows)}`);
}
