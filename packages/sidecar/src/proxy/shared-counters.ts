/**
 * Plain monotonic counters (a cluster's {@link ClusterCounters}, the sidecar's own) for the worker
 * threads of `workers: N`: each worker writes only its own Float64 words in a SharedArrayBuffer, so
 * `counters.requests++` stays a plain read and write with no contention, and the main thread reads
 * the sums for the admin API and /metrics.
 * @module
 */

/**
 * A block of `keys.length` counters per worker.
 *
 * @example
 * ```ts
 * const block = newCountersBlock(2, 12);
 * ```
 */
export interface CountersBlock {
  readonly sab: SharedArrayBuffer;
  readonly workers: number;
}

/**
 * A zeroed block.
 *
 * @example
 * ```ts
 * const block = newCountersBlock(2, 3);
 * ```
 */
export function newCountersBlock(workers: number, keys: number): CountersBlock {
  return { sab: new SharedArrayBuffer(workers * keys * 8), workers };
}

/**
 * An object with one number property per key over `block`: in a worker (`worker` >= 0) each reads
 * and writes that worker's own word; in the main thread (`worker` -1) each reads the sum over the
 * workers and ignores writes.
 *
 * @example
 * ```ts
 * const c = sharedCounters(['requests', 'retries'] as const, block, 0);
 * c.requests++;
 * ```
 */
export function sharedCounters<K extends string>(
  keys: readonly K[],
  block: CountersBlock,
  worker: number,
): Record<K, number> {
  const f = new Float64Array(block.sab);
  const n = keys.length;
  const out = {} as Record<K, number>;
  keys.forEach((k, j) => {
    if (worker >= 0) {
      const at = worker * n + j;
      Object.defineProperty(out, k, {
        get: () => f[at]!,
        set: (v: number) => {
          f[at] = v;
        },
        enumerable: true,
      });
    } else {
      Object.defineProperty(out, k, {
        get: () => {
          let s = 0;
          for (let w = 0; w < block.workers; w++) s += f[w * n + j]!;
          return s;
        },
        set: () => {},
        enumerable: true,
      });
    }
  });
  return out;
}

/**
 * Each worker's values of `key`, for per-worker figures in the admin.
 *
 * @example
 * ```ts
 * const perWorker = perWorkerCounter(['requests'] as const, block, 'requests');
 * ```
 */
export function perWorkerCounter<K extends string>(
  keys: readonly K[],
  block: CountersBlock,
  key: K,
): number[] {
  const f = new Float64Array(block.sab);
  const j = keys.indexOf(key);
  return Array.from({ length: block.workers }, (_, w) => f[w * keys.length + j]!);
}
