// tripswitch adapters. They import the built package (packages/core/dist through the workspace link),
// so run `npm run build` first. Scenarios whose API has not landed yet report themselves as skipped.
import * as tripswitch from 'tripswitch';
import { config, fail, ignore, work } from './workload.mjs';

export const library = 'tripswitch';

const { circuitBreaker, retry, timeout, wrap } = tripswitch;

/** Why a scenario cannot run in this build, or undefined. */
export function unavailable(scenario) {
  if (typeof circuitBreaker !== 'function') return 'circuitBreaker() is not exported by this build yet';
  if (
    scenario === 'composite.breaker-timeout' &&
    (typeof wrap !== 'function' || typeof timeout !== 'function')
  )
    return 'wrap()/timeout() are not exported by this build yet';
  if (
    scenario === 'composite.retry-breaker-timeout' &&
    (typeof wrap !== 'function' || typeof retry !== 'function')
  )
    return 'wrap()/retry()/timeout() are not exported by this build yet';
  return undefined;
}

const consecutive = () =>
  circuitBreaker({
    trip: { kind: 'consecutive', threshold: config.consecutive.threshold },
    openDuration: config.openMs,
  });

const count = () =>
  circuitBreaker({
    trip: {
      kind: 'count',
      windowSize: config.count.window,
      minimumCalls: config.count.minimumCalls,
      failureRateThreshold: config.count.failureRate,
    },
    openDuration: config.openMs,
  });

const time = () =>
  circuitBreaker({
    trip: {
      kind: 'time',
      windowMs: config.time.windowMs,
      buckets: config.time.buckets,
      minimumCalls: config.time.minimumCalls,
      failureRateThreshold: config.time.failureRate,
    },
    openDuration: config.openMs,
  });

const closed = (b) => () => (b.state === 'closed' ? undefined : `state is ${b.state}, not closed`);

const success = (make) => () => {
  const b = make();
  return { call: () => b.execute(work), check: closed(b) };
};

const opened = async () => {
  const b = consecutive();
  for (let i = 0; i < config.consecutive.threshold; i++) await b.execute(fail).catch(ignore);
  const check = () => (b.state === 'open' ? undefined : `state is ${b.state}, not open`);
  const problem = check();
  if (problem) throw new Error(problem);
  return { b, check };
};

export const scenarios = {
  'success.consecutive': success(consecutive),
  'success.count': success(count),
  'success.time': success(time),

  'open.execute': async () => {
    const { b, check } = await opened();
    return { call: () => b.execute(work), check };
  },

  // The two-step API: a synchronous permit check that returns undefined while open (no error built).
  'permit.try-acquire': async () => {
    const { b, check } = await opened();
    return {
      call: () => b.tryAcquire(),
      check: () =>
        check() ?? (b.tryAcquire() === undefined ? undefined : 'tryAcquire() granted a permit while open'),
    };
  },

  'single.failure-after-100k': () => ({
    make: () => {
      const b = time();
      return { ok: () => b.execute(work), fail: () => b.execute(fail), check: closed(b) };
    },
  }),

  'heap.consecutive': () => ({ make: consecutive }),
  'heap.count': () => ({ make: count }),
  'heap.time': () => ({ make: time }),

  'composite.breaker-timeout': () => {
    const b = consecutive();
    const p = wrap(b, timeout({ ms: config.timeoutMs }));
    return { call: () => p.execute(work), check: closed(b) };
  },

  'composite.retry-breaker-timeout': () => {
    const b = consecutive();
    const p = wrap(retry({ maxAttempts: config.attempts }), b, timeout({ ms: config.timeoutMs }));
    return { call: () => p.execute(work), check: closed(b) };
  },
};
