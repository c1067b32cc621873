/**
 * The Pareto front over the replay measures (all to minimise), and one choice from it.
 * @module
 */
import type { ReplayMetrics } from './replay.js';

/**
 * The measures the front is computed over, each better when smaller.
 *
 * @example
 * ```ts
 * for (const k of objectives) console.log(k, result.metrics[k]);
 * ```
 */
export const objectives = [
  'detectMs',
  'letThrough',
  'falseOpens',
  'refusedHealthy',
  'closeMs',
  'probes',
] as const;

/**
 * One of {@link objectives}.
 *
 * @example
 * ```ts
 * const k: Objective = 'falseOpens';
 * ```
 */
export type Objective = (typeof objectives)[number];

/**
 * True when `a` is at least as good as `b` on every key and better on one.
 *
 * @example
 * ```ts
 * dominates({ detectMs: 1, falseOpens: 0 }, { detectMs: 2, falseOpens: 0 }, ['detectMs', 'falseOpens']); // true
 * ```
 */
export function dominates<K extends string>(
  a: Readonly<Record<K, number>>,
  b: Readonly<Record<K, number>>,
  keys: readonly K[],
): boolean {
  let better = false;
  for (const k of keys) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) better = true;
  }
  return better;
}

/**
 * Indices of the items no other item dominates (ties all stay), in input order.
 *
 * @example
 * ```ts
 * const front = paretoFront(results.map((r) => r.metrics)); // [0, 3, 7]
 * ```
 */
export function paretoFront<K extends string = Objective>(
  items: ReadonlyArray<Readonly<Record<K, number>>>,
  keys: readonly K[] = objectives as unknown as readonly K[],
): number[] {
  const front: number[] = [];
  for (let i = 0; i < items.length; i++) {
    let dominated = false;
    for (let j = 0; j < items.length && !dominated; j++)
      dominated = j !== i && dominates(items[j]!, items[i]!, keys);
    if (!dominated) front.push(i);
  }
  return front;
}

/**
 * Picks one point of the front: no missed incident if any candidate manages it, then the smallest
 * sum of measures each scaled by its largest finite value on the front (an infinite value counts
 * as twice that), weighted by `weights` (default 1 each).
 *
 * @example
 * ```ts
 * const best = choose(metrics, paretoFront(metrics), { falseOpens: 3 }); // false opens weigh triple
 * ```
 */
export function choose(
  metrics: readonly ReplayMetrics[],
  front: readonly number[],
  weights: Partial<Record<Objective, number>> = {},
): number {
  if (front.length === 0) throw new RangeError('choose: the front is empty');
  const noMiss = front.filter((i) => metrics[i]!.missed === 0);
  const pool = noMiss.length > 0 ? noMiss : front;
  const scale = {} as Record<Objective, number>;
  for (const k of objectives) {
    let max = 0;
    for (const i of pool) if (Number.isFinite(metrics[i]![k])) max = Math.max(max, metrics[i]![k]);
    scale[k] = max > 0 ? max : 1;
  }
  let best = pool[0]!;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const i of pool) {
    let s = 0;
    for (const k of objectives) {
      const v = metrics[i]![k];
      s += (weights[k] ?? 1) * (Number.isFinite(v) ? v / scale[k] : 2);
    }
    if (s < bestScore) {
      bestScore = s;
      best = i;
    }
  }
  return best;
}
