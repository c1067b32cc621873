/**
 * The fleet-wide half-open probe lease of one attached breaker (`SET NX PX` in Redis, one holder
 * at a time), so a recovering upstream sees the breaker's probes from one instance, not from
 * every instance. Internal.
 *
 * @module
 */
import type { Clock } from 'tripswitch';
import type { Connection } from './connection.js';
import type { BreakerHandle, CircuitState } from './contract.js';
import type { StoreConfig } from './options.js';

/** A probe lease nobody used within this long (capped at half the lease) is given back. */
const UNCLAIMED_LEASE_MS = 250;

/** The keys a lease script touches, and who asks. */
export interface LeaseKeys {
  readonly probe: string;
  readonly state: string;
  readonly open: string;
  /** The session's holder id (`<instanceId>#<n>`). */
  readonly holder: string;
}

/**
 * What a session does with a refused lease: the stored state, its remaining open period and its
 * version, as Redis held them when it refused.
 */
export type Refused = (state: CircuitState | '', pttl: number, version: number) => void;

/**
 * What a session does with the answer to one lease request. Made when the lease is asked for, so
 * it can tell whether the session heard of anything newer (or moved on itself) while the answer
 * was on its way.
 */
export interface LeaseAnswer {
  /**
   * Granted on the stored state of this version: whether the lease is still good to take. Not when
   * a write ran after the grant (it deleted the lease in Redis, see the session's rule).
   */
  readonly granted: (version: number) => boolean;
  readonly refused: Refused;
}

export class ProbeLease {
  readonly #cfg: StoreConfig;
  readonly #conn: Connection;
  readonly #handle: BreakerHandle;
  readonly #keys: LeaseKeys;
  /** Called as the lease is asked for; what it returns gets Redis's answer. */
  readonly #answer: () => LeaseAnswer;
  /** Until when (local clock) this instance holds a lease nobody has used yet. */
  #leaseUntil = Number.NEGATIVE_INFINITY;
  #nextAcquireAt = Number.NEGATIVE_INFINITY;
  /** The lease request in flight: resolves true when granted. */
  #acquiring: Promise<boolean> | undefined = undefined;
  #renewTimer: ReturnType<Clock['setTimeout']> | undefined;
  #unclaimedTimer: ReturnType<Clock['setTimeout']> | undefined;
  #stopped = false;

  constructor(
    cfg: StoreConfig,
    conn: Connection,
    handle: BreakerHandle,
    keys: LeaseKeys,
    answer: () => LeaseAnswer,
  ) {
    this.#cfg = cfg;
    this.#conn = conn;
    this.#handle = handle;
    this.#keys = keys;
    this.#answer = answer;
  }

  /** Another instance moved the shared state: a lease fetched before it is not to be used. */
  forget(): void {
    this.#leaseUntil = Number.NEGATIVE_INFINITY;
  }

  /** This breaker left half-open: its lease (if any) is over, and so is its renewal. */
  end(): void {
    this.#leaseUntil = Number.NEGATIVE_INFINITY;
    this.#stopRenewal();
  }

  requestProbe(): boolean {
    if (this.#stopped || !this.#conn.healthy) return true; // Redis away: decide locally
    const now = this.#cfg.clock.now();
    if (now < this.#leaseUntil) {
      this.#leaseUntil = Number.NEGATIVE_INFINITY;
      this.#stopUnclaimed();
      this.#renewLater();
      return true;
    }
    if (this.#acquiring === undefined && now >= this.#nextAcquireAt) this.#acquire(now);
    return false;
  }

  // The breaker's execute() waits here after requestProbe() said false, so the call that asked
  // becomes the probe when the lease comes: without it a quiet instance (calls farther apart than
  // the unclaimed lease is kept) would ask, be refused, give the lease back, and never probe.
  // Bounded by the store's command timeout; never rejects.
  awaitProbe(): Promise<boolean> {
    if (this.#stopped || !this.#conn.healthy) return Promise.resolve(true);
    const now = this.#cfg.clock.now();
    if (now < this.#leaseUntil) return Promise.resolve(true);
    if (this.#acquiring !== undefined) return this.#acquiring;
    return Promise.resolve(false); // refused moments ago: retry on a later call, not in a loop
  }

  stop(): void {
    this.#stopRenewal();
    this.#stopUnclaimed();
    this.#stopped = true;
  }

  #ask(): Promise<[number, string | null, number, number]> {
    const k = this.#keys;
    return this.#conn.run(() =>
      this.#conn.scripts.tripswitchProbe(k.probe, k.state, k.open, k.holder, this.#cfg.leaseMs),
    );
  }

  // While this instance probes, the lease is renewed every third of its life, so a probe slower
  // than probeLeaseMs keeps its exclusivity; a dead holder renews nothing and the lease expires.
  #renewLater(): void {
    const clock = this.#cfg.clock;
    this.#stopRenewal();
    this.#renewTimer = clock
      .setTimeout(() => {
        this.#renewTimer = undefined;
        if (this.#stopped || this.#handle.state !== 'half-open' || !this.#conn.connected) return;
        this.#ask().then(
          ([granted]) => {
            if (granted === 1 && !this.#stopped && this.#handle.state === 'half-open') this.#renewLater();
          },
          (err: unknown) => this.#conn.markDegraded(err),
        );
      }, this.#cfg.leaseMs / 3)
      .unref();
  }

  // A lease is fetched for the call after the one that asked; if no call comes soon (a quiet
  // instance, or an eager half-open timer with no traffic), hand it back so a busy instance probes.
  #giveBackIfUnclaimed(): void {
    this.#stopUnclaimed();
    this.#unclaimedTimer = this.#cfg.clock
      .setTimeout(
        () => {
          this.#unclaimedTimer = undefined;
          if (this.#leaseUntil === Number.NEGATIVE_INFINITY || this.#stopped || !this.#conn.connected) return;
          this.#leaseUntil = Number.NEGATIVE_INFINITY;
          this.#conn
            .run(() => this.#conn.scripts.tripswitchRelease(this.#keys.probe, this.#keys.holder))
            .catch((err: unknown) => this.#conn.markDegraded(err));
        },
        Math.min(UNCLAIMED_LEASE_MS, this.#cfg.leaseMs / 2),
      )
      .unref();
  }

  #stopUnclaimed(): void {
    if (this.#unclaimedTimer === undefined) return;
    this.#cfg.clock.clearTimeout(this.#unclaimedTimer);
    this.#unclaimedTimer = undefined;
  }

  #stopRenewal(): void {
    if (this.#renewTimer === undefined) return;
    this.#cfg.clock.clearTimeout(this.#renewTimer);
    this.#renewTimer = undefined;
  }

  #acquire(sentAt: number): Promise<boolean> {
    const answer = this.#answer();
    this.#acquiring = this.#ask().then(
      ([granted, state, pttl, version]) => {
        this.#acquiring = undefined;
        if (this.#stopped) return false;
        if (granted === 1) {
          // A grant the session says is stale is not taken: a write after it deleted the lease in
          // Redis (nothing to give back), and the instance already stands on a newer state. The
          // next call asks again. Otherwise the lease is counted from when it was asked for, so
          // local time never outlives Redis's.
          if (!answer.granted(Number(version))) return false;
          this.#leaseUntil = sentAt + this.#cfg.leaseMs;
          this.#giveBackIfUnclaimed();
          return true;
        }
        this.#nextAcquireAt = this.#cfg.clock.now() + this.#cfg.probeRetryMs;
        answer.refused((state ?? '') as CircuitState | '', Number(pttl), Number(version));
        return false;
      },
      (err: unknown) => {
        this.#acquiring = undefined;
        this.#conn.markDegraded(err);
        return false;
      },
    );
    return this.#acquiring;
  }
}
