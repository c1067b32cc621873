/**
 * An abortable sleep on a {@link Clock}. Internal.
 * @module
 */
import type { Clock, TimerHandle } from './clock.js';

/**
 * Resolves after `ms` on `clock`; rejects with `signal.reason` as soon as `signal` aborts, clearing
 * the timer and removing its listener either way.
 */
export function sleep(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    let timer: TimerHandle | undefined;
    const onAbort = () => {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      reject(signal!.reason);
    };
    timer = clock.setTimeout(() => {
      timer = undefined;
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    // Not unref'd: a caller awaits this sleep (a retry's backoff), and between attempts nothing
    // else may hold the event loop, so an unref'd timer would let the process exit mid-retry.
    // It never outlives the call: it fires or the abort clears it.
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
