/**
 * The settings of a window rule (count, time, or custom predicate), shared between breakers built
 * from equal settings, and the verdict on a window's totals.
 *
 * @module
 */
import { fill, newCounts, Trip, type TripCounts } from './trip-rules-api.js';

/**
 * A window rule's settings. Breakers built from equal settings (without a predicate) share one spec, so a
 * breaker carries only its counts. `scratch` is shared too: it is filled and handed to the
 * predicate synchronously, never kept.
 */
export interface Spec {
  readonly minimumCalls: number;
  readonly failureRate: number | undefined;
  readonly slowRate: number | undefined;
  readonly failureCount: number | undefined;
  readonly predicate: ((c: Readonly<TripCounts>) => boolean) | undefined;
  readonly slowCallDuration: number | undefined;
  /** Ring size (count rule) or bucket count (time rule). */
  readonly size: number;
  /** Time rule: bucket length in ms. */
  readonly bucketMs: number;
  readonly scratch: TripCounts;
}

const specs = new Map<string, Spec>();

/** The spec for these settings: one shared object per distinct settings without a predicate. */
export function intern(s: Omit<Spec, 'scratch'>): Spec {
  // A spec with a predicate is not cached: the cache must not pin caller closures.
  if (s.predicate !== undefined) return { ...s, scratch: newCounts() };
  const key = `${s.minimumCalls}|${s.failureRate}|${s.slowRate}|${s.failureCount}|${s.slowCallDuration}|${s.size}|${s.bucketMs}`;
  const hit = specs.get(key);
  if (hit !== undefined) return hit;
  const spec: Spec = { ...s, scratch: newCounts() };
  if (specs.size < 256) specs.set(key, spec);
  return spec;
}

/** The {@link Trip} code of a window with these totals under the spec `t` (0: stay closed). */
export function judge(t: Spec, calls: number, failures: number, slow: number, consecutive: number): number {
  if (t.predicate !== undefined) {
    fill(t.scratch, calls, failures, slow, consecutive);
    return t.predicate(t.scratch) ? Trip.predicate : Trip.none;
  }
  if (t.failureCount !== undefined && failures >= t.failureCount) return Trip.failureCount;
  if (calls < t.minimumCalls) return Trip.none;
  if (t.failureRate !== undefined && failures >= t.failureRate * calls) return Trip.failureRate;
  if (t.slowRate !== undefined && slow >= t.slowRate * calls) return Trip.slowCallRate;
  return Trip.none;
}
