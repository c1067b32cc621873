/**
 * The `count` trip rule (and a custom predicate over `windowSize` calls): the last calls in a ring.
 *
 * @module
 */
import { fill, Trip, type TripCounts, type TripRule, type WindowSnapshot } from './trip-rules-api.js';
import { judge, type Spec } from './trip-rules-spec.js';

const FAIL = 1;
const SLOW = 2;

/** The last `size` outcomes in a ring of 2-bit codes, with running totals. */
export class CountRule implements TripRule {
  readonly ring: Uint8Array;
  /** Restored counts have not been judged under this rule's thresholds yet. */
  unjudged = false;
  next = 0;
  filled = 0;
  failures = 0;
  slow = 0;
  constructor(readonly t: Spec) {
    this.ring = new Uint8Array(t.size);
  }
  get slowCallDuration(): number | undefined {
    return this.t.slowCallDuration;
  }
  record(failure: boolean, slow: boolean, consecutive: number): number {
    const ring = this.ring;
    const i = this.next;
    if (this.filled === ring.length) {
      const old = ring[i]!;
      if (old & FAIL) this.failures--;
      if (old & SLOW) this.slow--;
    } else this.filled++;
    let code = 0;
    if (failure) {
      code = FAIL;
      this.failures++;
    }
    if (slow) {
      code |= SLOW;
      this.slow++;
    }
    ring[i] = code;
    this.next = i + 1 === ring.length ? 0 : i + 1;
    // A fast success cannot raise a rate (it may replace an old failure, never add one), so after a
    // judgement that did not trip, only the success that brings the window to minimumCalls needs one.
    if (code === 0 && !this.unjudged && this.filled !== this.t.minimumCalls && this.t.predicate === undefined)
      return Trip.none;
    this.unjudged = false;
    return judge(this.t, this.filled, this.failures, this.slow, consecutive);
  }
  reset(): void {
    this.ring.fill(0);
    this.next = 0;
    this.filled = 0;
    this.failures = 0;
    this.slow = 0;
  }
  read(_now: number, out: TripCounts): void {
    fill(out, this.filled, this.failures, this.slow, 0);
  }
  snapshot(): WindowSnapshot {
    const out: number[] = [];
    const n = this.ring.length;
    const start = this.filled === n ? this.next : 0;
    for (let k = 0; k < this.filled; k++) out.push(this.ring[(start + k) % n]!);
    return { kind: 'count', outcomes: out };
  }
  restore(d: WindowSnapshot): void {
    if (d.kind !== 'count' || !Array.isArray(d.outcomes)) return;
    this.reset();
    const from = Math.max(0, d.outcomes.length - this.ring.length);
    for (let k = from; k < d.outcomes.length; k++) {
      const c = d.outcomes[k]! & 3;
      const ring = this.ring;
      ring[this.next] = c;
      this.next = this.next + 1 === ring.length ? 0 : this.next + 1;
      this.filled++;
      if (c & FAIL) this.failures++;
      if (c & SLOW) this.slow++;
    }
    this.unjudged = true;
  }
  dispose(): void {}
}
