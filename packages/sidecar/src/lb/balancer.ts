/**
 * Load balancing over the hosts that are not ejected: round robin, or least request (the lower of
 * two random picks, as Envoy does). When every host is ejected the cluster is in panic and all
 * hosts are used, so a fully ejected cluster still answers.
 * @module
 */
import type { OutlierHost } from '../outlier/outlier.js';

/** A balancing policy name. */
export type LbPolicy = 'round_robin' | 'least_request';

/**
 * Picks hosts for one cluster.
 * @example
 * ```ts
 * const lb = new Balancer('round_robin', hosts);
 * const host = lb.pick(Date.now());
 * ```
 */
export class Balancer<H extends OutlierHost> {
  #next = 0;
  constructor(
    readonly policy: LbPolicy,
    readonly hosts: readonly H[],
    readonly random: () => number = Math.random,
  ) {}

  /** The host for the next request at time `now`. */
  pick(now: number): H {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 1) return hosts[0]!;
    if (this.policy === 'round_robin') {
      for (let i = 0; i < n; i++) {
        const h = hosts[this.#next++ % n]!;
        if (h.ejectedUntil <= now) return h;
      }
      return hosts[this.#next++ % n]!;
    }
    let live = 0;
    for (const h of hosts) if (h.ejectedUntil <= now) live++;
    const pool = live === 0 ? n : live;
    const a = this.#nth(Math.floor(this.random() * pool), live === 0, now);
    const b = this.#nth(Math.floor(this.random() * pool), live === 0, now);
    return b.active < a.active ? b : a;
  }

  #nth(i: number, all: boolean, now: number): H {
    if (all) return this.hosts[i]!;
    for (const h of this.hosts) if (h.ejectedUntil <= now && i-- === 0) return h;
    return this.hosts[0]!;
  }
}
