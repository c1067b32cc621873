/**
 * Reading breakers' shared state in a bounded window (start-up, attach, recovery). Internal.
 *
 * Why a window: a store re-reads every attached breaker after an outage and reads each new one on
 * attach. Sent all at once, 10,000 reads queue behind each other on the one command connection
 * and in Redis, and each read's deadline starts when it is sent, so the last ones miss
 * `commandTimeoutMs` because of their place in the queue, not because Redis is gone. With a
 * bounded number in flight a read's wait is Redis's latency for a window, not for the whole set.
 *
 * Why per breaker: a read that times out while Redis keeps answering the others (Redis is slow,
 * not gone) is retried for that breaker alone, later; the others are synchronised. Only a read
 * during which Redis answered nothing at all, or an error other than a timeout, degrades the
 * store, and then the window stops until the connection's next re-synchronisation.
 *
 * @module
 */
import type { Connection } from './connection.js';

/** Reads in flight at once per store. */
export const RESYNC_WINDOW = 64;
/** Re-reads of a breaker whose read was overtaken by a message (messages keep it fresh anyway). */
const MAX_OVERTAKEN = 5;

/** What the queue needs of a breaker's session. */
export interface Syncable {
  readonly detached: boolean;
  /** Reads and applies the shared state; false when a message overtook the read. */
  sync(): Promise<boolean>;
}

function isTimeout(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ERR_REDIS_COMMAND_TIMEOUT';
}

export class SyncQueue<S extends Syncable> {
  readonly #conn: Connection;
  readonly #window: number;
  /** Waiting to be read, in order; a breaker whose first call waits goes first (`#urgent`). */
  readonly #queue = new Set<S>();
  readonly #urgent = new Set<S>();
  readonly #inFlight = new Set<S>();
  readonly #overtaken = new Map<S, number>();
  readonly #drained: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  readonly #idleWaiters = new Set<(ok: boolean) => void>();
  /** Stopped after a failure that degraded the store, until the next `pass()`. */
  #paused = false;

  constructor(conn: Connection, window = RESYNC_WINDOW) {
    this.#conn = conn;
    this.#window = window;
  }

  /** Reads one breaker (attached, or refused by a read that timed out). */
  add(s: S): void {
    this.#queue.add(s);
    this.#pump();
  }

  /** A detached breaker needs no read. */
  remove(s: S): void {
    this.#queue.delete(s);
    this.#urgent.delete(s);
    this.#overtaken.delete(s);
    this.#pump(); // it may have been the last one a pass waited for
  }

  /** Reads `s` before the others still waiting (a call waits for its first read). */
  prioritize(s: S): void {
    if (!this.#queue.delete(s)) return;
    this.#urgent.add(s);
    this.#pump();
  }

  /**
   * Re-reads every given breaker; resolves once none is left to read, rejects when a failure
   * degraded the store (the connection's recheck starts a new pass).
   */
  pass(all: Iterable<S>): Promise<void> {
    for (const s of all) if (!this.#urgent.has(s)) this.#queue.add(s);
    this.#paused = false;
    const done = new Promise<void>((resolve, reject) => this.#drained.push({ resolve, reject }));
    this.#pump();
    return done;
  }

  #pump(): void {
    if (this.#paused || !this.#conn.connected) return;
    for (const set of [this.#urgent, this.#queue]) {
      for (const s of set) {
        if (this.#inFlight.size >= this.#window) return;
        // read again once its current read is done (it may predate what this pass is for)
        if (this.#inFlight.has(s)) continue;
        set.delete(s);
        if (!s.detached) this.#start(s);
      }
    }
    if (this.idle) {
      for (const w of this.#drained.splice(0)) w.resolve();
      for (const w of [...this.#idleWaiters]) w(true);
    }
  }

  /** No read waiting or in flight. */
  get idle(): boolean {
    return this.#inFlight.size === 0 && this.#queue.size === 0 && this.#urgent.size === 0;
  }

  /** Resolves true once idle, false after `timeoutMs` or on `close()`. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.idle) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#idleWaiters.delete(done);
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), Math.max(0, timeoutMs));
      this.#idleWaiters.add(done);
    });
  }

  close(): void {
    this.#paused = true;
    for (const w of [...this.#idleWaiters]) w(false);
  }

  #start(s: S): void {
    this.#inFlight.add(s);
    const answersBefore = this.#conn.answers;
    s.sync().then(
      (fresh) => {
        this.#inFlight.delete(s);
        if (fresh || s.detached) this.#overtaken.delete(s);
        else {
          const n = (this.#overtaken.get(s) ?? 0) + 1;
          if (n < MAX_OVERTAKEN) {
            this.#overtaken.set(s, n);
            this.#queue.add(s);
          } else this.#overtaken.delete(s);
        }
        this.#pump();
      },
      (err: unknown) => {
        this.#inFlight.delete(s);
        if (!s.detached) this.#queue.add(s);
        // Redis answered other commands while this one waited: slow, not gone. Retry it later.
        if (isTimeout(err) && this.#conn.answers > answersBefore) {
          this.#pump();
          return;
        }
        this.#paused = true;
        this.#conn.markDegraded(err);
        for (const w of this.#drained.splice(0)) w.reject(err);
      },
    );
  }
}
