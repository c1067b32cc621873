/**
 * The event stream's overview: one small row per breaker (what the grid shows), and the
 * differences between two ticks. Values are rounded to what the page displays first, so a
 * breaker whose displayed numbers did not move sends nothing. Charts and counts by outcome are
 * not streamed: the page fetches `breaker.json` for the breaker it shows in detail.
 *
 * @module
 */
import type { CircuitState } from 'tripswitch';
import type { BreakerView, DashboardSnapshot } from './collector.js';

/**
 * One breaker in the stream's overview. Short keys: with 1,000 breakers every byte is paid a
 * thousand times a tick.
 *
 * @example
 * ```ts
 * const row: OverviewRow = { i: 3, n: 'payments', s: 'open', r: 'failure-rate', e: 0.6, q: 12, p: 48 };
 * ```
 */
export interface OverviewRow {
  /** Id of the breaker in this stream (deltas name breakers by id). */
  i: number;
  /** Name. */
  n: string;
  /** State. */
  s: CircuitState;
  /** Why it is in that state (absent when closed). */
  r?: string;
  /** The trip window when it opened, as text. */
  d?: string;
  /** Epoch ms of the next probe, while open. */
  x?: number;
  /** Error rate over the trip rule's window, 0..1, rounded to 0.1 %. */
  e: number;
  /** Calls per second over the window, 3 significant digits. */
  q: number;
  /** p99 latency in ms, 2 significant digits (`null`: no samples). */
  p: number | null;
  /** Label of the window the rates cover (e.g. `last 10 s`). */
  w: string;
}

/**
 * A `delta` event: rows (or the fields of a row) that changed since the previous event, by id,
 * plus the ids removed.
 *
 * @example
 * ```ts
 * es.addEventListener('delta', (e) => apply(JSON.parse(e.data) as DeltaEvent));
 * ```
 */
export interface DeltaEvent {
  at: number;
  /** Changed fields, `i` always present; a new breaker comes with every field. */
  set?: Array<Partial<OverviewRow> & { i: number }>;
  /** Ids no longer present. */
  del?: number[];
}

/**
 * A full `snapshot` event: every row.
 *
 * @example
 * ```ts
 * es.addEventListener('snapshot', (e) => reset(JSON.parse(e.data) as OverviewEvent));
 * ```
 */
export interface OverviewEvent {
  at: number;
  live: boolean;
  rows: OverviewRow[];
}

const round = (x: number, digits: number): number => {
  if (x === 0 || !Number.isFinite(x)) return 0;
  return Number(x.toPrecision(digits));
};

type Fields = Omit<OverviewRow, 'i'>;
const KEYS = ['n', 's', 'r', 'd', 'x', 'e', 'q', 'p', 'w'] as const;

function fields(v: BreakerView): Fields {
  const f: Fields = {
    n: v.name,
    s: v.state,
    e: Math.round(v.window.errorRate * 1000) / 1000,
    q: round(v.window.rate, 3),
    p: v.latency.p99 === null ? null : round(v.latency.p99, 2),
    w: v.window.label,
  };
  if (v.reason !== undefined) f.r = v.reason;
  if (v.reasonDetail !== undefined) f.d = v.reasonDetail;
  if (v.nextAttemptAt !== undefined && v.state === 'open') f.x = Math.round(v.nextAttemptAt);
  return f;
}

/**
 * Keeps what was last sent and turns each new snapshot into a delta. One encoder per handler:
 * every connected client receives the same deltas, and a client that missed one (a full socket
 * buffer) gets a fresh full snapshot instead.
 *
 * @example
 * ```ts
 * const enc = new DeltaEncoder();
 * enc.delta(collector.snapshot({ series: false })); // then enc.full() for a new client
 * ```
 */
export class DeltaEncoder {
  readonly #ids = new Map<string, number>();
  readonly #sent = new Map<number, Fields>();
  #nextId = 1;
  #at = 0;
  #live = false;

  /** The delta from the last state to `snap`, or `undefined` when nothing shown changed. Updates the state. */
  delta(snap: DashboardSnapshot): DeltaEvent | undefined {
    this.#at = snap.at;
    this.#live = snap.live;
    const set: DeltaEvent['set'] = [];
    const present = new Set<number>();
    for (const v of snap.breakers) {
      let id = this.#ids.get(v.name);
      if (id === undefined) {
        id = this.#nextId++;
        this.#ids.set(v.name, id);
      }
      present.add(id);
      const now = fields(v);
      const before = this.#sent.get(id);
      this.#sent.set(id, now);
      if (before === undefined) {
        set.push({ i: id, ...now });
        continue;
      }
      let change: (Partial<OverviewRow> & { i: number }) | undefined;
      for (const k of KEYS) {
        if (before[k] === now[k]) continue;
        change ??= { i: id };
        // An absent optional field (reason gone, no probe due) is sent as null so the page clears it.
        (change as Record<string, unknown>)[k] = now[k] ?? null;
      }
      if (change !== undefined) set.push(change);
    }
    const del: number[] = [];
    for (const [name, id] of this.#ids) {
      if (present.has(id)) continue;
      del.push(id);
      this.#ids.delete(name);
      this.#sent.delete(id);
    }
    if (set.length === 0 && del.length === 0) return undefined;
    const out: DeltaEvent = { at: snap.at };
    if (set.length > 0) out.set = set;
    if (del.length > 0) out.del = del;
    return out;
  }

  /** Every row as last computed by {@link DeltaEncoder.delta} (for a new or resynchronised client). */
  full(): OverviewEvent {
    const rows: OverviewRow[] = [];
    for (const [, id] of this.#ids) rows.push({ i: id, ...this.#sent.get(id)! });
    return { at: this.#at, live: this.#live, rows };
  }
}
