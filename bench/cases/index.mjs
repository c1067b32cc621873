// The benchmark plan: which cases run, in which section, and which rows are compared with which.
// A case is `<library>:<scenario>`; run.mjs starts one process per case per round.

/** Sections in report order. `unit` is what the number measures. */
export const sections = [
  {
    id: 'success',
    title: 'Successful call through execute',
    unit: 'ns/call',
    baseline: 'baseline:success.await',
    cases: [
      ['baseline:success.await', 'bare `await fn()`'],
      ['tripswitch:success.consecutive', 'tripswitch, consecutive (5)'],
      ['cockatiel:success.consecutive', 'cockatiel, ConsecutiveBreaker(5)'],
      ['tripswitch:success.count', 'tripswitch, count (last 100 calls, min 20, 50%)'],
      ['tuner:success.count-recorded', 'tripswitch, count, every call recorded by `recordTrace`'],
      ['cockatiel:success.count', 'cockatiel, CountBreaker(size 100, min 20, 50%)'],
      ['tripswitch:success.time', 'tripswitch, time (10 s / 10 buckets, min 5, 50%)'],
      ['cockatiel:success.time', 'cockatiel, SamplingBreaker(10 s, 0.5 rps, 50%)'],
      ['opossum:success.rolling', 'opossum, rolling 10 s / 10 buckets, volume 5, 50%, timeout off'],
    ],
  },
  {
    id: 'open',
    title: 'Rejection while open, through execute',
    unit: 'ns/call',
    baseline: 'baseline:success.await',
    cases: [
      ['baseline:open.await-rejected', 'bare `await fn()` rejecting with a pre-built error'],
      ['baseline:open.new-error', 'async function throwing `new Error()` (stack capture floor)'],
      ['tripswitch:open.execute', 'tripswitch, CircuitOpenError'],
      ['cockatiel:open.execute', 'cockatiel, BrokenCircuitError'],
      ['opossum:open.execute', 'opossum, EOPENBREAKER'],
    ],
  },
  {
    id: 'permit',
    title: 'Permit check while open (synchronous, no call)',
    unit: 'ns/check',
    baseline: 'baseline:permit.noop',
    cases: [
      ['baseline:permit.noop', 'empty synchronous call'],
      ['tripswitch:permit.try-acquire', 'tripswitch `tryAcquire()` (undefined while open)'],
    ],
  },
  {
    id: 'single',
    title: 'One failure after 100,000 successes in a time window (each failing call timed alone)',
    unit: 'ns for the one failing call',
    baseline: 'baseline:single.failure-after-100k',
    cases: [
      ['baseline:single.failure-after-100k', 'bare `await fn()` rejecting, caught'],
      ['tripswitch:single.failure-after-100k', 'tripswitch, time window'],
      ['cockatiel:single.failure-after-100k', 'cockatiel, SamplingBreaker'],
      ['opossum:single.failure-after-100k', 'opossum, rolling window (percentiles on, its default)'],
    ],
  },
  {
    id: 'heap',
    title: 'Heap per idle breaker (10,000 created, --expose-gc)',
    unit: 'bytes/breaker',
    cases: [
      ['tripswitch:heap.consecutive', 'tripswitch, consecutive'],
      ['cockatiel:heap.consecutive', 'cockatiel, ConsecutiveBreaker'],
      ['tripswitch:heap.count', 'tripswitch, count (100 calls)'],
      ['cockatiel:heap.count', 'cockatiel, CountBreaker(100)'],
      ['tripswitch:heap.time', 'tripswitch, time window (10 buckets)'],
      ['cockatiel:heap.time', 'cockatiel, SamplingBreaker(10 s)'],
      ['opossum:heap.rolling', 'opossum (rolling window, its only mode)'],
    ],
  },
  {
    id: 'composite',
    title: 'Composites: breaker + timeout (10 s), retry + breaker + timeout',
    unit: 'ns/call',
    baseline: 'baseline:success.await',
    cases: [
      ['tripswitch:composite.breaker-timeout', 'tripswitch `wrap(breaker, timeout)`'],
      ['cockatiel:composite.breaker-timeout', 'cockatiel `wrap(breaker, timeout)` (cooperative)'],
      ['opossum:composite.breaker-timeout', 'opossum, its built-in 10 s timeout on'],
      ['tripswitch:composite.retry-breaker-timeout', 'tripswitch `wrap(retry, breaker, timeout)`'],
      ['cockatiel:composite.retry-breaker-timeout', 'cockatiel `wrap(retry, breaker, timeout)`'],
    ],
  },
];

/**
 * Side-by-side rows with the issue targets. `measure` is 'added' (ns over the section baseline),
 * 'absolute' (the number itself) or 'bytes'. Ratios are tripswitch / peer on that measure.
 * `target` is checked on the tripswitch value: `maxRatio` against each listed peer, `maxValue` absolute.
 */
export const comparisons = [
  {
    label: 'success, consecutive',
    measure: 'added',
    tripswitch: 'tripswitch:success.consecutive',
    cockatiel: 'cockatiel:success.consecutive',
    opossum: 'opossum:success.rolling',
    target: { maxRatio: { cockatiel: 0.25 }, text: '<= 0.25 x cockatiel' },
  },
  {
    label: 'success, count window',
    measure: 'added',
    tripswitch: 'tripswitch:success.count',
    cockatiel: 'cockatiel:success.count',
    opossum: 'opossum:success.rolling',
    target: { maxRatio: { cockatiel: 0.25 }, text: '<= 0.25 x cockatiel' },
  },
  {
    label: 'success, time window',
    measure: 'added',
    tripswitch: 'tripswitch:success.time',
    cockatiel: 'cockatiel:success.time',
    opossum: 'opossum:success.rolling',
    target: { maxRatio: { cockatiel: 0.25 }, text: '<= 0.25 x cockatiel' },
  },
  {
    label: 'rejection while open (execute)',
    measure: 'added',
    tripswitch: 'tripswitch:open.execute',
    cockatiel: 'cockatiel:open.execute',
    opossum: 'opossum:open.execute',
    target: { maxRatio: { cockatiel: 0.25, opossum: 0.25 }, text: '<= 0.25 x both' },
  },
  {
    label: 'permit check while open',
    measure: 'absolute',
    tripswitch: 'tripswitch:permit.try-acquire',
    target: { maxValue: 50, text: '< 50 ns' },
  },
  {
    label: 'one failure after 100k successes',
    measure: 'added',
    tripswitch: 'tripswitch:single.failure-after-100k',
    cockatiel: 'cockatiel:single.failure-after-100k',
    opossum: 'opossum:single.failure-after-100k',
    target: { maxValue: 1000, text: '< 1 us added' },
  },
  {
    label: 'heap per breaker, consecutive',
    measure: 'bytes',
    tripswitch: 'tripswitch:heap.consecutive',
    cockatiel: 'cockatiel:heap.consecutive',
    opossum: 'opossum:heap.rolling',
    target: { maxRatio: { cockatiel: 0.3 }, text: '<= 0.3 x cockatiel' },
  },
  {
    label: 'heap per breaker, count window',
    measure: 'bytes',
    tripswitch: 'tripswitch:heap.count',
    cockatiel: 'cockatiel:heap.count',
    opossum: 'opossum:heap.rolling',
  },
  {
    label: 'heap per breaker, time window',
    measure: 'bytes',
    tripswitch: 'tripswitch:heap.time',
    cockatiel: 'cockatiel:heap.time',
    opossum: 'opossum:heap.rolling',
    target: { maxRatio: { cockatiel: 0.3 }, text: '<= 0.3 x cockatiel' },
  },
  {
    label: 'breaker + timeout',
    measure: 'added',
    tripswitch: 'tripswitch:composite.breaker-timeout',
    cockatiel: 'cockatiel:composite.breaker-timeout',
    opossum: 'opossum:composite.breaker-timeout',
    target: { maxRatio: { cockatiel: 0.05, opossum: 0.7 }, text: '<= 0.05 x cockatiel, <= 0.7 x opossum' },
  },
  {
    label: 'retry + breaker + timeout',
    measure: 'added',
    tripswitch: 'tripswitch:composite.retry-breaker-timeout',
    cockatiel: 'cockatiel:composite.retry-breaker-timeout',
    opossum: 'opossum:composite.breaker-timeout',
    note: 'opossum has no retry; its column is opossum with its timeout on',
  },
];
