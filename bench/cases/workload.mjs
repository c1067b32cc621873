// The one workload every library runs, so the numbers compare like with like.
//
// `work` is the protected function: an async function that resolves with a counter. The counter is
// read back by the harness after the run (see `calls()`), so the call cannot be optimised away.
// `fail` rejects with a pre-built error: creating an Error costs several microseconds (stack
// capture), which would drown the breakers' own cost in the failure-path cases.

let counter = 0;

/** The protected function: resolves, does a trivial observable side effect. */
export const work = async () => ++counter;

/** Failure the protected function rejects with; built once. */
export const failure = new Error('downstream failed');

/** The protected function when the downstream is failing. */
export const fail = async () => {
  counter++;
  throw failure;
};

/** How many times `work`/`fail` ran (sink read by the harness). */
export const calls = () => counter;

/** No-op used to swallow expected rejections. */
export const ignore = () => {};

/**
 * Shared configuration, expressed once; every adapter translates it to its library's options.
 * - consecutive: open after 5 consecutive failures.
 * - count: failure rate >= 50% over the last 100 calls, at least 20 calls.
 * - time: failure rate >= 50% over 10 s in 10 buckets of 1 s, at least 5 calls in the window.
 * - openMs: how long the breaker stays open; long enough that no case ever sees a probe.
 * - timeoutMs: the timeout in the composite cases; never reached (`work` resolves at once).
 * - attempts: attempts in total, the first included, in the retry composite (never retried: `work` succeeds).
 */
export const config = {
  consecutive: { threshold: 5 },
  count: { window: 100, minimumCalls: 20, failureRate: 0.5 },
  time: { windowMs: 10_000, buckets: 10, minimumCalls: 5, failureRate: 0.5 },
  openMs: 600_000,
  timeoutMs: 10_000,
  attempts: 3,
};
