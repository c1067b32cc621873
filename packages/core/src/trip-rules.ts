/**
 * Trip rules: when a closed breaker opens. Internal module; the options types are exported from
 * the package through `breaker.ts`.
 *
 * Every rule keeps running totals, so recording an outcome is O(1) (a time window touches at most
 * `buckets` slots when time has moved on, amortised O(1)). Time windows clear stale buckets
 * lazily, when an outcome or a read finds a newer bucket index, so a breaker idle for longer than
 * its window starts from an empty window rather than from counts that are hours old; no timer
 * rotates buckets. The only timer is the shared bucket ticker (see `BucketTicker`): under traffic,
 * one per clock and bucket length, whatever the number of breakers; none without traffic.
 *
 *
 * One job per module:
 * - `trip-rules-api.ts`: what the breaker and every rule kind share (the `TripRule` contract,
 *   `Trip` codes and reasons, `TripCounts`, `WindowSnapshot`);
 * - `trip-rules-options.ts`: the option types, and their validation into a rule (`createTripRule`);
 * - `trip-rules-spec.ts`: a window rule's shared settings and the verdict on its totals;
 * - `trip-rules-consecutive.ts`, `trip-rules-count.ts`, `trip-rules-time.ts`, `trip-rules-total.ts`:
 *   one rule kind each (a custom predicate counts in a count, time or total window);
 * - `trip-rules-ticker.ts`: the bucket index shared by the time windows of one clock.
 *
 * @module
 */
export {
  newCounts,
  Trip,
  type TripCounts,
  type TripRule,
  tripReasons,
  type WindowSnapshot,
} from './trip-rules-api.js';
export {
  type ConsecutiveTripOptions,
  type CountTripOptions,
  type CustomTripOptions,
  createTripRule,
  type TimeTripOptions,
  type TripOptions,
} from './trip-rules-options.js';
