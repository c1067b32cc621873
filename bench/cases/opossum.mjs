// opossum 9.0.0 adapters.
//
// opossum has one trip rule: an error percentage over a rolling time window (10 buckets over 10 s by
// default), with `volumeThreshold` as the minimum number of calls. It has no consecutive-failure or
// last-N-calls mode, so every opossum case uses the closest equivalent: at least 5 calls in the 10 s
// window with >= 50% failures (5 failures in a row on a fresh breaker trip it, as in the consecutive
// breakers). `timeout: false` except in the composite cases, where opossum's own timeout (on by
// default, 10 s) is the comparison for a breaker + timeout composite.
import CircuitBreaker from 'opossum';
import { config, fail, ignore, work } from './workload.mjs';

export const library = 'opossum';

const options = (timeout) => ({
  timeout,
  resetTimeout: config.openMs,
  errorThresholdPercentage: config.time.failureRate * 100,
  volumeThreshold: config.time.minimumCalls,
  rollingCountTimeout: config.time.windowMs,
  rollingCountBuckets: config.time.buckets,
});

// The action calls whatever function it is fired with, so one breaker can see successes and failures.
const dispatch = (fn) => fn();

const closed = (b) => () => (b.closed ? undefined : 'breaker is not closed');

export const scenarios = {
  'success.rolling': () => {
    const b = new CircuitBreaker(work, options(false));
    return { call: () => b.fire(), check: closed(b), dispose: () => b.shutdown() };
  },

  // Tripped by real failures; every call then takes opossum's normal rejection path (a new Error + 'reject' event).
  'open.execute': async () => {
    const b = new CircuitBreaker(dispatch, options(false));
    for (let i = 0; i < config.time.minimumCalls; i++) await b.fire(fail).catch(ignore);
    const check = () => (b.opened ? undefined : 'breaker is not open');
    const problem = check();
    if (problem) throw new Error(problem);
    return { call: () => b.fire(work), check, dispose: () => b.shutdown() };
  },

  'single.failure-after-100k': () => {
    const made = [];
    return {
      make: () => {
        const b = new CircuitBreaker(dispatch, options(false));
        made.push(b);
        return { ok: () => b.fire(work), fail: () => b.fire(fail), check: closed(b) };
      },
      dispose: () => {
        for (const b of made) b.shutdown();
      },
    };
  },

  'heap.rolling': () => ({
    make: () => new CircuitBreaker(work, options(false)),
    release: (breakers) => {
      for (const b of breakers) b.shutdown();
    },
  }),

  // opossum's timeout is built in (one setTimeout per call); it has no retry policy, so this case is also
  // the opossum column of the breaker + retry + timeout comparison.
  'composite.breaker-timeout': () => {
    const b = new CircuitBreaker(work, options(config.timeoutMs));
    return { call: () => b.fire(), check: closed(b), dispose: () => b.shutdown() };
  },
};
