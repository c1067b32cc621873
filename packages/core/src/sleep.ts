/**
 * An abortable sleep on a {@link Clock}. Internal.
 * @module
 */
import type { Clock, TimerHandle } from './clock.js';

/**
 * Resolves once `ms` have passed on `clock`; rejects with `signal.reason` as soon as `signal`
 * aborts, clearing the timer and removing its listener either way. The caller awaits this sleep,
 * so its timer keeps the process alive unless `ref` is false.
 *
 * A timer may fire early by the clock's reading: Node starts it from the event loop's cached time,
 * which lags `now()` by however long the current turn has run. A retry that waits out an open
 * breaker's `retryAfter` must not arrive while the breaker is still open, so an early wake-up
 * sleeps again for the rest.
 */
export function sleep(
  clock: Clock,
  ms: number,
  signal: AbortSignal | undefined,
  ref: boolean,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const until = clock.now() + ms;
    let timer: TimerHandle | undefined;
    const onAbort = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      reject(signal!.reason);
    };
    const arm = (wait: number) => {
      timer = clock.setTimeout(onTimer, wait);
      if (!ref) timer.unref();
    };
    const onTimer = () => {
      const left = until - clock.now();
      if (left > 0) {
        arm(left);
        return;
      }
      timer = undefined;
      signal?.removeEventListener('abort', onAbort);
      resolve();
    };
    arm(ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
