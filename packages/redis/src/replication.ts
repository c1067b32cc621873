/**
 * State replication for one attached breaker (its `StoreSession`): local transitions are written
 * to Redis and published by one script; other instances' messages are applied to the local
 * breaker; a read reconciles the two at start-up, after a reconnect and after a refused write.
 * Fleet counting and the probe lease are delegated to their own modules. Internal.
 *
 * @module
 */
import type { Connection } from './connection.js';
import type { BreakerHandle, CircuitState, StoreSession } from './contract.js';
import { FleetCounter, type Outcome } from './fleet-counts.js';
import type { StoreConfig } from './options.js';
import { type LeaseAnswer, ProbeLease } from './probe-lease.js';

const MANUAL_STATES = new Set<string>(['isolated', 'disabled', 'metrics-only']);

/** A state change on the channel, as the scripts publish it. */
export interface Message {
  n: string;
  s: CircuitState;
  r: string;
  d: number;
  i: string;
  v: number;
  /** The sender session's count of local transitions when it published (its own echo check). */
  q?: number;
}

type Transition = {
  from: CircuitState;
  to: CircuitState;
  reason: string;
  openUntil?: number;
  manual?: boolean;
};

// Transitions a breaker makes by itself; anything else is an operator's (manual) decision, which
// always wins in Redis, while automatic ones never override a manual state set elsewhere.
function isAutomatic(from: CircuitState, to: CircuitState): boolean {
  return (
    (from === 'closed' && to === 'open') ||
    (from === 'half-open' && (to === 'open' || to === 'closed')) ||
    (from === 'open' && to === 'half-open')
  );
}

/** What a session needs from the store that made it. */
export interface SessionHost {
  readonly config: StoreConfig;
  readonly connection: Connection;
  /** `<prefix>:{<name>}:<part>`: every key of one breaker on one cluster slot. */
  key(name: string, part: string): string;
  /** The channel of one breaker's state changes (one per store, or per breaker when sharded). */
  channel(name: string): string;
  /** A fresh holder id for a session of this store. */
  nextHolderId(): string;
  removeSession(session: Session, name: string): void;
  /** A call waits for this session's first read: read it before the others still waiting. */
  prioritize(session: Session): void;
}

export class Session implements StoreSession {
  readonly #host: SessionHost;
  readonly #cfg: StoreConfig;
  readonly #conn: Connection;
  readonly #handle: BreakerHandle;
  readonly #name: string;
  readonly #id: string;
  readonly #kState: string;
  readonly #kOpen: string;
  readonly #kProbe: string;
  readonly #kCounts: string;
  /** The channel this breaker's state changes are published on. */
  readonly #channel: string;
  readonly #lease: ProbeLease;
  readonly #counts: FleetCounter | undefined;
  /** Version of the shared state as last seen (applied or written); tells a re-read whether Redis moved on. */
  #version = 0;
  /** Bumped whenever a message or a reply tells this session something: detects stale reads. */
  #moves = 0;
  /**
   * Version of the state last taken from a reply (a read, a refused write or probe lease), or
   * written by this instance (an applied write's reply, a fleet trip's), or that a granted probe
   * lease was given on. The two connections are not ordered with each other: a message published
   * before that reply was made can arrive after it, and must not undo it (the reply already
   * reflects it, or this instance's write replaced it). Another instance's message at this very
   * version is the one the reply reflects, and is skipped too; this instance's own (the echo of
   * its write) is not. Versions of one breaker only grow (the scripts' `next_version`); the one
   * time they go back, a Redis restarted or failed over, the store reconnects and re-reads, and
   * that read sets this anew.
   */
  #floor = 0;
  /** The last local transition that could not be published (Redis away). */
  #pending: Transition | undefined;
  /** Order of local transitions, so an older failure never replaces a newer pending one. */
  #seq = 0;
  #pendingSeq = 0;
  #publishing = 0;
  #detached = false;
  /** The first read of the shared state is done (or was given up): calls decide without waiting. */
  #firstSyncDone = false;
  /** Calls waiting for the first read, and the deadline that bounds their wait. */
  #syncGate: { promise: Promise<void>; open: () => void; timer: ReturnType<typeof setTimeout> } | undefined;
  /** Present only in fleet mode, so a local-mode breaker does not even make the call. */
  onOutcome?: (outcome: Outcome) => void;

  constructor(host: SessionHost, handle: BreakerHandle) {
    // Per session, not per store: two breakers of one name on one store hear each other, and
    // each holds (or not) the probe lease on its own.
    this.#id = host.nextHolderId();
    this.#host = host;
    this.#cfg = host.config;
    this.#conn = host.connection;
    this.#handle = handle;
    this.#name = handle.name;
    this.#kState = host.key(handle.name, 's');
    this.#kOpen = host.key(handle.name, 'o');
    this.#kProbe = host.key(handle.name, 'p');
    this.#kCounts = host.key(handle.name, 'c');
    this.#channel = host.channel(handle.name);
    this.#lease = new ProbeLease(
      this.#cfg,
      this.#conn,
      handle,
      { probe: this.#kProbe, state: this.#kState, open: this.#kOpen, holder: this.#id },
      () => this.#leaseAnswer(),
    );
    if (this.#cfg.mode === 'fleet') {
      const counts = new FleetCounter(this.#cfg, this.#conn, handle, {
        stateKey: this.#kState,
        openKey: this.#kOpen,
        countsKey: this.#kCounts,
        holder: this.#id,
        name: this.#name,
        channel: this.#channel,
        seq: () => this.#seq,
        openDuration: () => this.#openDuration(),
        tripped: (v) => this.#raiseFloor(v),
      });
      this.#counts = counts;
      this.onOutcome = (o) => counts.record(o);
    }
  }

  get detached(): boolean {
    return this.#detached;
  }

  /**
   * A reply says Redis held version `v` when it ran, and the local state already stands for it:
   * this instance's own write (applied, or a fleet trip), or a granted probe lease that is taken
   * (given only on an open state whose period is over, which this instance, open or half-open,
   * stands on; a stale grant is not taken, see #leaseAnswer).
   * Messages published before it that arrive after it are skipped (see onMessage).
   */
  #raiseFloor(v: number): void {
    if (!this.#detached && v > this.#floor) this.#floor = v;
  }

  /** The breaker's own next open period (backoff included) when it tells, else the fleet rule's. */
  #openDuration(): number {
    try {
      const d = this.#handle.openDurationMs?.();
      if (typeof d === 'number' && Number.isFinite(d) && d > 0) return d;
    } catch {
      // a handle that cannot tell falls back to the configured period
    }
    return this.#cfg.rule.openDurationMs;
  }

  onTransition(ev: Transition): void {
    if (this.#detached) return;
    this.#seq++;
    // open -> half-open is this instance's own step; the probe lease already speaks for it.
    if (ev.from === 'open' && ev.to === 'half-open') return;
    if (ev.to !== 'closed') this.#counts?.clear();
    if (ev.from === 'half-open') this.#lease.end();
    if (!this.#conn.connected) {
      this.#pending = ev;
      this.#pendingSeq = this.#seq;
      return;
    }
    this.#publish(ev);
  }

  #publish(ev: Transition): void {
    const { clock, sharded } = this.#cfg;
    const openMs =
      ev.to === 'open' ? Math.max(1, (ev.openUntil ?? clock.now() + this.#openDuration()) - clock.now()) : -1;
    // Breakers that say so are believed; older ones are classified by the transition itself.
    const manual = ev.manual ?? !isAutomatic(ev.from, ev.to);
    const kind = manual ? 'manual' : 'auto';
    const seq = this.#seq;
    const movesAtSend = this.#moves;
    this.#publishing++;
    this.#conn
      .run(() =>
        this.#conn.scripts.tripswitchTransition(
          this.#kState,
          this.#kOpen,
          this.#kProbe,
          this.#kCounts,
          ev.to,
          ev.reason,
          Math.round(openMs),
          this.#id,
          kind,
          this.#channel,
          this.#name,
          ev.from,
          seq,
          sharded ? '1' : '0',
        ),
      )
      .then(
        ([applied, version, state, pttl]) => {
          this.#publishing--;
          if (this.#detached) return;
          if (this.#pendingSeq <= seq) this.#pending = undefined;
          // Applied: its own message (in order with the others) confirms it. Messages published
          // before the write ran are older than it, and one that arrives after this reply is
          // skipped, as after a read: its echo puts the write back only while no later local
          // transition was made, and open -> half-open is one that publishes nothing.
          if (applied === 1) {
            this.#raiseFloor(Number(version));
            return;
          }
          // Refused: the shared state (a manual state, an earlier trip, another probe holder)
          // wins, and this breaker takes it over, unless messages arrived meanwhile: they are
          // newer than this answer, and a fresh read settles it.
          if (this.#moves !== movesAtSend || this.#seq !== seq) {
            this.refresh();
            return;
          }
          this.#version = Number(version);
          this.#floor = this.#version;
          this.#moves++;
          this.#adopt(state as CircuitState | '', 'shared', Number(pttl));
        },
        (err: unknown) => {
          this.#publishing--;
          if (this.#detached) return;
          if (this.#pending === undefined || this.#pendingSeq < seq) {
            this.#pending = ev;
            this.#pendingSeq = seq;
          }
          this.#conn.markDegraded(err);
        },
      );
  }

  /**
   * What to do with the probe lease's answer. It comes on the command connection, not in order
   * with the messages, and is stale when this instance made a local transition since it asked, or
   * applied a message newer than the answer while it was on its way (both wrote after Redis
   * answered).
   *
   * Refused: the reply carries the stored state, taken over as a read's is. Stale, it is not taken,
   * and a fresh read settles it; otherwise it is the truth and sets the version floor: messages
   * published before it that arrive after it are already in it.
   *
   * Granted: stale, the lease is not taken (the next call asks again). Every write that can follow
   * a grant deleted the lease in Redis (a manual state or an open period deletes it, and a close
   * over it is refused unless it is the holder's own from half-open, which deletes it too), so
   * there is nothing to give back, and the instance already stands on a newer state than the open
   * one the lease was given on: taken, it would move to half-open and probe without the lease,
   * beside whoever gets it next. Otherwise the grant's version sets the floor: messages up to it
   * were published before the grant and would move the instance off that open state.
   */
  #leaseAnswer(): LeaseAnswer {
    const seen = this.#moves;
    const seq = this.#seq;
    const stale = (v: number) => this.#seq !== seq || (this.#moves !== seen && this.#version > v);
    return {
      granted: (v) => {
        if (this.#detached || stale(v)) return false;
        this.#raiseFloor(v);
        return true;
      },
      refused: (state, pttl, v) => {
        if (this.#detached) return;
        if (stale(v)) {
          this.refresh();
          return;
        }
        this.#version = v;
        this.#floor = v;
        this.#moves++;
        if (state === 'closed' || MANUAL_STATES.has(state)) this.#adopt(state, 'shared', -1);
        else if (pttl > 0) this.#apply('open', 'shared', pttl);
      },
    };
  }

  /** Applies a state read from Redis (not from a message) if it differs from the local one. */
  #adopt(state: CircuitState | '', reason: string, pttl: number): void {
    const local = this.#handle.state;
    if (state === '' || state === 'half-open') {
      // Another instance is probing (or the state is unknown): an open period that ran out
      // stays open here until the probe decides.
      if (state === 'half-open' && local === 'closed') this.#apply('open', reason, 0);
      return;
    }
    if (state === 'open') {
      if (pttl > 0) this.#apply('open', reason, pttl);
      else if (local === 'closed' || MANUAL_STATES.has(local)) this.#apply('open', reason, 0);
      return;
    }
    if (state !== local) this.#apply(state, reason, -1);
  }

  #apply(state: CircuitState, reason: string, openMs: number): void {
    // Runs inside Redis callbacks and the subscriber's event handler: a throwing handle must
    // become a log line, not an unhandled rejection or a crashed connection.
    try {
      if (state === 'open') {
        this.#handle.applyRemote({
          state,
          openUntil: this.#cfg.clock.now() + Math.max(0, openMs),
          reason: `remote:${reason}`,
        });
      } else {
        this.#handle.applyRemote({ state, reason: `remote:${reason}` });
      }
    } catch (err) {
      this.#conn.report(`applyRemote(${state}) failed on breaker "${this.#name}": ${String(err)}`);
    }
  }

  onMessage(m: Message): void {
    if (this.#detached) return;
    // Published before the state this session last took from a reply was read: already in it.
    // Another instance's message at the floor's version is the state the reply reflects (applied
    // again, an open would restart its period on the local clock, and make a granted lease be
    // forgotten); this instance's own is the echo of its write, which may still have to put it back.
    if (m.v < this.#floor || (m.v === this.#floor && m.i !== this.#id)) return;
    if (m.i === this.#id) {
      this.#version = m.v;
      this.#moves++;
      // Our own write, echoed in its place in the order. If another instance's message was
      // applied after our local transition but was ordered before our write, the local state is
      // now behind Redis: put it back, unless this instance moved on since (a later transition).
      if (m.q === this.#seq && m.s !== this.#handle.state) {
        if (m.s === 'open') this.#apply('open', m.r, m.d);
        else this.#apply(m.s, m.r, -1);
      }
      return;
    }
    // One server executes every publish in order and delivers them in that order on the one
    // subscriber connection, so arrival order is the order of the state changes: no version
    // comparison here (a version could go back after a FLUSHALL or a failover).
    this.#version = m.v;
    this.#moves++;
    this.#pending = undefined;
    this.#lease.forget();
    if (m.s === 'open') this.#apply('open', m.r, m.d);
    else if (m.s !== this.#handle.state) this.#apply(m.s, m.r, -1);
  }

  requestProbe(): boolean {
    if (this.#detached) return true;
    return this.#lease.requestProbe();
  }

  awaitProbe(): Promise<boolean> {
    if (this.#detached) return Promise.resolve(true);
    return this.#lease.awaitProbe();
  }

  // A process started while the fleet's breaker is open must not send calls to the dead
  // dependency before it has read the shared state: until the first read, calls wait for it,
  // bounded by the command timeout (on real time: a socket's deadline, like run()'s). With Redis
  // known to be away they do not wait at all: the breaker decides locally, as when degraded.
  untilSynced(): Promise<void> | undefined {
    if (this.#firstSyncDone || this.#detached) return undefined;
    if (this.#conn.degraded) {
      this.firstSyncDone();
      return undefined;
    }
    if (this.#syncGate === undefined) {
      let open!: () => void;
      const promise = new Promise<void>((resolve) => {
        open = resolve;
      });
      // Not unref'd: a caller awaits it (the process must not exit under a waiting call); it
      // exists only while calls wait, at most commandTimeoutMs. The bound is judged after the
      // event loop has read the sockets once more, as run()'s deadline is: in a process that
      // stalled past it, the read's answer may be waiting in the socket, and the call must be
      // decided on it rather than on the local state.
      const timer = setTimeout(() => setImmediate(() => this.firstSyncDone()), this.#cfg.timeoutMs);
      this.#syncGate = { promise, open, timer };
      this.#host.prioritize(this);
    }
    return this.#syncGate.promise;
  }

  /** The first read is done, failed, or Redis went away: waiting calls go on and decide. */
  firstSyncDone(): void {
    this.#firstSyncDone = true;
    const gate = this.#syncGate;
    if (gate === undefined) return;
    this.#syncGate = undefined;
    clearTimeout(gate.timer);
    gate.open();
  }

  /** Reads until a read is not overtaken by messages (bounded: messages keep it fresh too). */
  refresh(attempt = 0): void {
    if (this.#detached || !this.#conn.connected) return;
    this.sync().then(
      (fresh) => {
        if (!fresh && attempt < 5) this.refresh(attempt + 1);
      },
      (err: unknown) => this.#conn.markDegraded(err),
    );
  }

  /**
   * Reads the shared state and reconciles it with the local one (start-up, reconnect, after a
   * refused write). Resolves false when the read was overtaken and nothing was applied.
   */
  sync(): Promise<boolean> {
    // Whatever the read gives (state applied, overtaken by a message, or an error that degrades
    // the store), calls no longer wait for it.
    return this.#read().finally(() => this.firstSyncDone());
  }

  async #read(): Promise<boolean> {
    const seen = this.#moves;
    const seq = this.#seq;
    const [state, reason, version, pttl] = await this.#conn.run(() =>
      this.#conn.scripts.tripswitchRead(this.#kState, this.#kOpen),
    );
    if (this.#detached) return true;
    const v = Number(version);
    const pending = this.#pending;
    // A transition made while Redis was away is newer than what Redis holds, unless another
    // instance wrote since this one last saw the state (or Redis restarted empty).
    if (pending && (state === '' || v === this.#version)) {
      this.#pending = undefined;
      const stillOpen = pending.to !== 'open' || (pending.openUntil ?? 0) > this.#cfg.clock.now();
      if (this.#handle.state === pending.to && stillOpen) {
        this.#publish(pending);
        return true;
      }
    }
    this.#pending = undefined;
    // A publish of ours is in flight and will reconcile with whatever Redis holds, or this
    // instance moved on, or a message newer than the read was applied while the read was on its
    // way: the read is stale. Messages that arrived meanwhile but ran before the read (the two
    // connections are not ordered with each other) do not make it stale: it already reflects
    // them, and treating it as overtaken could give up re-reading with an older message applied.
    // Otherwise the read is the truth, even with a lower version than seen before (a server
    // restarted with its clock set back), so the versions of later messages compare against it.
    if (this.#publishing > 0) return true;
    if (this.#seq !== seq || (this.#moves !== seen && this.#version > v)) return false;
    this.#version = v;
    this.#floor = v;
    this.#moves++;
    this.#adopt(state as CircuitState | '', reason || 'sync', Number(pttl));
    return true;
  }

  detach(): void {
    if (this.#detached) return;
    this.#counts?.flush();
    this.#lease.stop();
    this.#detached = true;
    this.firstSyncDone();
    this.#host.removeSession(this, this.#name);
  }
}
