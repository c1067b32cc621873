/**
 * `Atomics.waitAsync` (Node 16+), typed: it is not yet in the ES2023 lib this package compiles
 * against. Shared by the workers' shared breaker and shared limits.
 * @module
 */

/**
 * Waits, without blocking the thread, until `a[index]` is notified, unless it no longer holds
 * `value` (then the result is synchronous: `async: false`). `timeoutMs` bounds the wait.
 *
 * @example
 * ```ts
 * const r = waitAsync(words, BELL, seen, 250);
 * if (r.async) void r.value.then(loop);
 * ```
 */
export const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      index: number,
      value: number,
      timeoutMs?: number,
    ): { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;
