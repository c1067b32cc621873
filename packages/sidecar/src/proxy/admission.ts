/**
 * Admission, the filter every proxied request and tunnel passes before an upstream is chosen: the
 * priority's limiter, then one `admit()` that takes a breaker permit and a limiter slot. A request
 * may wait in the priority's pending queue; a tunnel may not (it would hold a client socket with
 * nothing to say). Refusals are counted where they happen: the breaker counts its rejections and
 * the cluster its `circuitOpen`, the limiter its own overflow.
 * @module
 */
import type { IncomingMessage } from 'node:http';
import type { Permit } from 'tripswitch';
import type { Cluster } from './cluster.js';
import type { Limiter, Waiter } from './limits.js';
import type { CompiledRoute } from './route.js';

/** What {@link admit} fills in on the request or tunnel it admits. */
export interface Admittee {
  /** The breaker permit taken (settled by whoever holds it). */
  permit: Permit | undefined;
  /** The place in the pending queue while waiting. */
  waiter: Waiter | undefined;
  /** A queued request got its slot (requests only; tunnels never wait). */
  granted?(): void;
}

/** The outcome of {@link admit}. */
export type Admission = 'admitted' | 'queued' | 'circuit-open' | 'overloaded';

/** The limiter of the request's priority: the route's, or `high` when the priority header says so. */
export function limiterFor(route: CompiledRoute, req: IncomingMessage, priorityHeader: string): Limiter {
  const limits = route.cluster.limits;
  return route.high || req.headers[priorityHeader] === 'high' ? limits.high : limits.default;
}

/**
 * Takes a breaker permit and a slot of `lim`. A request that finds no free slot waits in the
 * pending queue when `who` has `granted()` (called with the slot); a tunnel does not. On
 * `circuit-open` and `overloaded` nothing is held (the permit taken is given back as neutral).
 */
export function admit(cluster: Cluster, lim: Limiter, who: Admittee): Admission {
  const b = cluster.breaker;
  if (b !== undefined) {
    // workers: N: first take the decision another worker may have made (one atomic load)
    const sb = cluster.sharedBreaker;
    sb?.sync();
    const p = b.tryAcquire();
    if (p === undefined) {
      cluster.counters.circuitOpen++;
      return 'circuit-open';
    }
    // workers: N: the outcome goes to the main thread's breaker, the one trip decision
    who.permit = sb === undefined ? p : sb.permit(p, b.state === 'half-open');
  }
  if (lim.tryEnter()) return 'admitted';
  // The callback is made only for a request that has to wait (no closure per request).
  const got = lim.acquire(who.granted === undefined ? undefined : () => who.granted!());
  if (got === true) return 'admitted';
  if (got !== undefined) {
    who.waiter = got;
    return 'queued';
  }
  who.permit?.neutral();
  who.permit = undefined;
  return 'overloaded';
}
