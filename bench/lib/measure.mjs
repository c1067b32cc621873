// Measurement primitives used inside one case process. Each returns plain numbers in nanoseconds
// (or bytes) so the parent can aggregate across processes.
import { do_not_optimize, measure } from 'mitata';

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))];
const sortNum = (xs) => [...xs].sort((a, b) => a - b);

/**
 * ns per call of an async operation. Every case, the baseline included, is timed through the same
 * wrapper (an async function that awaits the call and catches), so the wrapper's cost cancels out
 * when the baseline is subtracted. mitata times batches of `batch` calls; the result is the median
 * batch average after a warm-up long enough for the JIT to settle.
 */
export async function timeAsync(call, { cpuMs, warmMs, batch }) {
  let sink;
  let resolved = 0;
  let rejected = 0;
  const op = async () => {
    try {
      sink = await call();
      resolved++;
    } catch (error) {
      sink = error;
      rejected++;
    }
  };
  await warm(op, warmMs);
  resolved = 0;
  rejected = 0;
  const stats = await measure(op, {
    min_cpu_time: cpuMs * 1e6,
    batch_samples: batch,
    min_samples: 20,
  });
  do_not_optimize(sink);
  return { ...summary(stats), resolved, rejected, sample: describe(sink) };
}

/** ns per call of a synchronous operation; the result goes through mitata's do_not_optimize. */
export async function timeSync(call, { cpuMs, warmMs, batch }) {
  const op = () => do_not_optimize(call());
  const end = performance.now() + warmMs;
  while (performance.now() < end) for (let i = 0; i < 10_000; i++) op();
  const stats = await measure(op, { min_cpu_time: cpuMs * 1e6, batch_samples: batch, min_samples: 20 });
  return { ...summary(stats), sample: describe(call()) };
}

async function warm(op, warmMs) {
  const end = performance.now() + warmMs;
  let n = 0;
  while (n < 2_000 || performance.now() < end) {
    for (let i = 0; i < 256; i++) await op();
    n += 256;
  }
}

function summary(stats) {
  return {
    ns: stats.p50,
    min: stats.min,
    p25: stats.p25,
    p75: stats.p75,
    avg: stats.avg,
    samples: stats.samples.length,
    calls: stats.ticks,
  };
}

/** What a call produced, for the record: a value's type or an error's name and code. */
function describe(value) {
  if (value instanceof Error)
    return { error: value.name, code: value.code, message: value.message.slice(0, 160) };
  return { type: typeof value };
}

/**
 * The cost of one failing call made after `successes` successful calls on a fresh breaker. One call
 * cannot be batched, so each failure is timed alone with performance.now(). After the successes,
 * `failures` failing calls are made in a row, each timed; the first is reported separately and left
 * out of the value: on Node 20 the first rejected promise after a run of resolved ones costs
 * 20-40 us whatever the library (the bare baseline shows it too), which would hide a 1 us
 * difference. The window still holds the 100,000 successes, so each later failure is still "one
 * failure after 100,000 successes" (the rate stays far below any threshold). Repeated on `reps`
 * fresh breakers; the value is the median of all the timed failures but the first of each rep.
 *
 * Before that, the timed functions and the library's failure path are optimised on throwaway
 * breakers (successes with an occasional failure): a catch block that never ran is compiled as a
 * deoptimisation point, and the first exception through it costs tens of microseconds that belong
 * to the harness, not to the breaker. Also times one successful call at the same point, for context.
 */
export async function timeFailureAfter(scenario, { successes, reps, failures = 21 }) {
  for (let k = 0; k < 30; k++) {
    const w = scenario.make();
    for (let i = 0; i < 100; i++) {
      await fill(w, 10);
      await timedFail(w);
      await timedOk(w);
    }
    const problem = w.check?.();
    if (problem) throw new Error(`warm-up breaker: ${problem}`);
  }

  const firsts = [];
  const fails = [];
  const oks = [];
  for (let r = 0; r < reps; r++) {
    const s = scenario.make();
    // A full GC before the run, not right before the timed calls: the first allocations after a GC
    // pay for lazy sweeping.
    globalThis.gc?.();
    await fill(s, successes);
    oks.push(await timedOk(s));
    firsts.push(await timedFail(s));
    for (let i = 1; i < failures; i++) fails.push(await timedFail(s));
    const problem = s.check?.();
    if (problem) throw new Error(`after ${failures} failures: ${problem}`);
  }
  do_not_optimize(okSink);
  if (!(failSink instanceof Error)) throw new Error('the failing call did not reject');
  const f = sortNum(fails);
  return {
    ns: percentile(f, 0.5),
    min: f[0],
    p25: percentile(f, 0.25),
    p75: percentile(f, 0.75),
    max: f[f.length - 1],
    reps,
    failuresPerRep: failures,
    firstNs: percentile(sortNum(firsts), 0.5),
    successNs: percentile(sortNum(oks), 0.5),
    sample: describe(failSink),
  };
}

let failSink;
let okSink;

async function fill(s, n) {
  for (let i = 0; i < n; i++) okSink = await s.ok();
}

async function timedFail(s) {
  failSink = undefined;
  const t0 = performance.now();
  try {
    await s.fail();
  } catch (error) {
    failSink = error;
  }
  return (performance.now() - t0) * 1e6;
}

async function timedOk(s) {
  const t0 = performance.now();
  okSink = await s.ok();
  return (performance.now() - t0) * 1e6;
}

/**
 * Heap bytes per object: create `count` objects under --expose-gc, keep them, and divide the
 * growth of heapUsed + arrayBuffers (after full GCs) by `count`. The holding array is allocated before the first
 * reading, and a few objects are created and dropped first so shared code and hidden classes exist.
 */
export function heapPerObject(scenario, { count }) {
  if (typeof globalThis.gc !== 'function') throw new Error('run with --expose-gc');
  const gc = () => {
    globalThis.gc();
    globalThis.gc();
  };
  const warmup = Array.from({ length: 100 }, () => scenario.make());
  scenario.release?.(warmup);
  warmup.length = 0;
  const keep = new Array(count).fill(null);
  // heapUsed plus ArrayBuffer backing stores, which live outside the JS heap: a breaker that keeps
  // its counters in a typed array must not look smaller than one that keeps them in an array.
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  gc();
  const before = used();
  for (let i = 0; i < count; i++) keep[i] = scenario.make();
  gc();
  const after = used();
  const bytes = (after - before) / count;
  scenario.release?.(keep);
  return { ns: undefined, bytes, count };
}
