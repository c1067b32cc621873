// cockatiel 3.2.1 adapters. Each scenario builds the policy the way cockatiel's README does.
import {
  CircuitState,
  ConsecutiveBreaker,
  CountBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  SamplingBreaker,
  TimeoutStrategy,
  timeout,
  wrap,
} from 'cockatiel';
import { config, fail, ignore, work } from './workload.mjs';

export const library = 'cockatiel';

const consecutive = () =>
  circuitBreaker(handleAll, {
    halfOpenAfter: config.openMs,
    breaker: new ConsecutiveBreaker(config.consecutive.threshold),
  });

const count = () =>
  circuitBreaker(handleAll, {
    halfOpenAfter: config.openMs,
    breaker: new CountBreaker({
      threshold: config.count.failureRate,
      size: config.count.window,
      minimumNumberOfCalls: config.count.minimumCalls,
    }),
  });

// cockatiel expresses "at least 5 calls in the window" as a minimum rate: 5 calls per 10 s = 0.5 rps.
const sampling = () =>
  circuitBreaker(handleAll, {
    halfOpenAfter: config.openMs,
    breaker: new SamplingBreaker({
      threshold: config.time.failureRate,
      duration: config.time.windowMs,
      minimumRps: config.time.minimumCalls / (config.time.windowMs / 1000),
    }),
  });

const closed = (b) => () => (b.state === CircuitState.Closed ? undefined : `state is ${b.state}, not closed`);

const success = (make) => () => {
  const b = make();
  return { call: () => b.execute(work), check: closed(b) };
};

export const scenarios = {
  'success.consecutive': success(consecutive),
  'success.count': success(count),
  'success.time': success(sampling),

  // Tripped by real failures, then every call takes cockatiel's normal rejection path (BrokenCircuitError).
  'open.execute': async () => {
    const b = consecutive();
    for (let i = 0; i < config.consecutive.threshold; i++) await b.execute(fail).catch(ignore);
    const check = () => (b.state === CircuitState.Open ? undefined : `state is ${b.state}, not open`);
    const problem = check();
    if (problem) throw new Error(problem);
    return { call: () => b.execute(work), check };
  },

  'single.failure-after-100k': () => ({
    make: () => {
      const b = sampling();
      return { ok: () => b.execute(work), fail: () => b.execute(fail), check: closed(b) };
    },
  }),

  'heap.consecutive': () => ({ make: consecutive }),
  'heap.count': () => ({ make: count }),
  'heap.time': () => ({ make: sampling }),

  // Breaker outside, timeout inside, so a timeout counts as a breaker failure (cockatiel's documented order).
  'composite.breaker-timeout': () => {
    const b = consecutive();
    const p = wrap(b, timeout(config.timeoutMs, TimeoutStrategy.Cooperative));
    return { call: () => p.execute(work), check: closed(b) };
  },

  'composite.retry-breaker-timeout': () => {
    const b = consecutive();
    const p = wrap(
      // cockatiel's maxAttempts counts retries after the first attempt; tripswitch's counts attempts.
      retry(handleAll, { maxAttempts: config.attempts - 1, backoff: new ExponentialBackoff() }),
      b,
      timeout(config.timeoutMs, TimeoutStrategy.Cooperative),
    );
    return { call: () => p.execute(work), check: closed(b) };
  },
};
