/**
 * A custom predicate without a window: its counts run from the last close.
 *
 * @module
 */
import { fill, nonNeg, type TripCounts, type TripRule, type WindowSnapshot } from './trip-rules-api.js';
import { judge, type Spec } from './trip-rules-spec.js';

/** A custom predicate over every call since the last close. */
export class TotalRule implements TripRule {
  calls = 0;
  failures = 0;
  slow = 0;
  constructor(readonly t: Spec) {}
  get slowCallDuration(): number | undefined {
    return this.t.slowCallDuration;
  }
  record(failure: boolean, slow: boolean, consecutive: number): number {
    this.calls++;
    if (failure) this.failures++;
    if (slow) this.slow++;
    return judge(this.t, this.calls, this.failures, this.slow, consecutive);
  }
  reset(): void {
    this.calls = 0;
    this.failures = 0;
    this.slow = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.calls, this.failures, this.slow, 0);
  }
  snapshot(): WindowSnapshot {
    return { kind: 'total', calls: this.calls, failures: this.failures, slowCalls: this.slow };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'total') return;
    this.calls = nonNeg(d.calls);
    this.failures = Math.min(this.calls, nonNeg(d.failures));
    this.slow = Math.min(this.calls, nonNeg(d.slowCalls));
  }
  dispose(): void {}
}
