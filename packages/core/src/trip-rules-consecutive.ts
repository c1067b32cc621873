/**
 * The `consecutive` trip rule: open after `threshold` failures in a row.
 *
 * @module
 */
import { fill, nonNeg, Trip, type TripCounts, type TripRule, type WindowSnapshot } from './trip-rules-api.js';

/** Trips on the breaker's run of failures; keeps totals since the last close for stats only. */
export class ConsecutiveRule implements TripRule {
  // Totals since the last close, for stats only.
  calls = 0;
  failures = 0;
  constructor(readonly threshold: number) {}
  get slowCallDuration(): undefined {
    return undefined;
  }
  record(failure: boolean, _slow: boolean, consecutive: number): number {
    this.calls++;
    if (!failure) return Trip.none;
    this.failures++;
    return consecutive >= this.threshold ? Trip.consecutive : Trip.none;
  }
  reset(): void {
    this.calls = 0;
    this.failures = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.calls, this.failures, 0, 0);
  }
  snapshot(): WindowSnapshot {
    return { kind: 'total', calls: this.calls, failures: this.failures, slowCalls: 0 };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'total') return;
    this.calls = nonNeg(d.calls);
    this.failures = Math.min(nonNeg(d.failures), this.calls);
  }
  dispose(): void {}
}
