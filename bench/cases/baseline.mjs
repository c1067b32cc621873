// Reference points that involve no library: what the protected call costs on its own.
import { fail, work } from './workload.mjs';

export const library = 'baseline';

export const scenarios = {
  /** A bare `await fn()`: the floor every breaker's successful call is compared with. */
  'success.await': () => ({ call: work }),

  /** A bare `await fn()` where fn rejects with a pre-built error (caught): the cheapest possible rejection. */
  'open.await-rejected': () => ({ call: fail }),

  /** An async function that throws `new Error()` (caught): the cost of a rejection that captures a stack. */
  'open.new-error': () => ({
    call: async () => {
      throw new Error('rejected');
    },
  }),

  /** An empty synchronous call: the floor for the permit check. */
  'permit.noop': () => ({ call: () => undefined }),

  /** One caught rejection of the bare function, timed once (floor for the single-failure case). */
  'single.failure-after-100k': () => ({ make: () => ({ ok: work, fail }) }),
};
