/**
 * Fleet mode's counting for one attached breaker: outcomes are counted in memory (four integers,
 * no allocation per call) and flushed in batches into Redis's time buckets, where one script sums
 * the window and trips the breaker for every instance when the aggregate crosses the fleet rule.
 * Internal.
 *
 * @module
 */
import type { Clock } from 'tripswitch';
import type { Connection } from './connection.js';
import type { BreakerHandle } from './contract.js';
import type { StoreConfig } from './options.js';

export type Outcome = 'success' | 'failure' | 'slow-success' | 'slow-failure';

/** What a flush needs from its session besides the counts. */
export interface FlushContext {
  readonly stateKey: string;
  readonly openKey: string;
  readonly countsKey: string;
  readonly holder: string;
  readonly name: string;
  /** Where a fleet trip is published. */
  readonly channel: string;
  /** The session's count of local transitions (echoed in a fleet trip's message). */
  seq(): number;
  /** The open period a fleet trip gives this breaker. */
  openDuration(): number;
  /** A flush tripped the fleet at this version (the session's version floor). */
  tripped(version: number): void;
}

export class FleetCounter {
  readonly #cfg: StoreConfig;
  readonly #conn: Connection;
  readonly #handle: BreakerHandle;
  readonly #ctx: FlushContext;
  #successes = 0;
  #failures = 0;
  #slowSuccesses = 0;
  #slowFailures = 0;
  /** Outcomes in the current batch (what decides when it is sent). */
  #batched = 0;
  #lastFlushAt = Number.NEGATIVE_INFINITY;
  #flushTimer: ReturnType<Clock['setTimeout']> | undefined;
  readonly #flushNow = () => {
    this.#flushTimer = undefined;
    this.flush();
  };

  constructor(cfg: StoreConfig, conn: Connection, handle: BreakerHandle, ctx: FlushContext) {
    this.#cfg = cfg;
    this.#conn = conn;
    this.#handle = handle;
    this.#ctx = ctx;
  }

  /** Runs on every call of a fleet-mode breaker: a few integer bumps, one timer per batch. */
  record(o: Outcome): void {
    if (o === 'success') this.#successes++;
    else if (o === 'failure') this.#failures++;
    else if (o === 'slow-success') this.#slowSuccesses++;
    else this.#slowFailures++;
    const n = ++this.#batched;
    if (n === 1) this.#arm(this.#cfg.flushIntervalMs);
    else if (n === this.#cfg.flushMax) this.#batchFull();
  }

  /** Forgets the unsent batch (the breaker left closed: those outcomes are no evidence any more). */
  clear(): void {
    this.#successes = this.#failures = this.#slowSuccesses = this.#slowFailures = this.#batched = 0;
  }

  // One timer per batch, armed by its first outcome; a full batch only brings the timer forward,
  // and never closer than flushIntervalMs / 10 after the previous flush, so a hot breaker sends at
  // most ten flushes per interval instead of one per batch.
  #batchFull(): void {
    const wait = this.#lastFlushAt + this.#cfg.flushIntervalMs / 10 - this.#cfg.clock.now();
    if (wait <= 0) this.flush();
    else this.#arm(wait);
  }

  #arm(ms: number): void {
    const clock = this.#cfg.clock;
    if (this.#flushTimer !== undefined) clock.clearTimeout(this.#flushTimer);
    this.#flushTimer = clock.setTimeout(this.#flushNow, ms).unref();
  }

  flush(): void {
    const { clock, rule } = this.#cfg;
    if (this.#flushTimer !== undefined) {
      clock.clearTimeout(this.#flushTimer);
      this.#flushTimer = undefined;
    }
    const s = this.#successes;
    const f = this.#failures;
    const ss = this.#slowSuccesses;
    const sf = this.#slowFailures;
    this.clear();
    this.#lastFlushAt = clock.now();
    // Counts made while Redis was away, or while this breaker is not closed, are not fleet
    // evidence any more by the time they could be sent: drop them.
    if (s + f + ss + sf === 0 || !this.#conn.connected || this.#handle.state !== 'closed') return;
    const bucketMs = Math.max(1, Math.ceil(rule.windowMs / rule.buckets));
    const c = this.#ctx;
    this.#conn
      .run(() =>
        this.#conn.scripts.tripswitchFlush(
          c.stateKey,
          c.openKey,
          c.countsKey,
          bucketMs,
          rule.buckets,
          s,
          f,
          ss,
          sf,
          rule.minimumCalls,
          rule.failureRateThreshold,
          rule.slowCallRateThreshold,
          rule.failureCount,
          Math.round(c.openDuration()),
          c.holder,
          c.channel,
          c.name,
          c.seq(),
          this.#cfg.sharded ? '1' : '0',
        ),
      )
      // A fleet trip reaches this instance as its own message, in order with everyone else's. Its
      // reply sets the version floor, as an applied write's does: messages older than the trip
      // that arrive after it would put back an older state, and the echo no longer corrects that
      // once the breaker moved on (open -> half-open on a granted lease publishes nothing).
      .then(
        ([result, , , , version]) => {
          if (result === 2) c.tripped(Number(version));
        },
        (err: unknown) => this.#conn.markDegraded(err),
      );
  }
}
