/**
 * Per-host outlier detection in Envoy's terms: consecutive 5xx, consecutive gateway failures and a
 * failure percentage per interval eject a host for `base_ejection_time x ejections` (capped), never
 * more than `max_ejection_percent` of the cluster (at least one host when the percentage is above 0).
 * Everything is evaluated lazily on outcomes and picks, with the injected clock: no timers.
 * @module
 */
import type { Clock } from 'tripswitch';
import { type ResolvedOutlier, resolveOutlier } from '../config/resolve.js';
import type { OutlierConfig } from '../config/schema.js';

/** What happened to one request on a host. */
export type HostOutcome = 'success' | 'error-5xx' | 'gateway' | 'local';

/** State of one upstream host, shared by the balancer and the detector. */
export interface OutlierHost {
  /** host:port */
  readonly address: string;
  /** Requests in flight (least_request reads it). */
  active: number;
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Epoch ms until which the host is ejected; 0 when not ejected. */
  ejectedUntil: number;
  /** Ejections so far (multiplies the ejection time; decays while healthy). */
  ejections: number;
  windowStart: number;
  windowTotal: number;
  windowFailures: number;
}

/** The resolved outlier settings (Envoy defaults). */
export interface OutlierSettings {
  consecutive5xx: number;
  consecutiveGateway: number;
  failurePercentage: number | undefined;
  requestVolume: number;
  intervalMs: number;
  baseEjectionMs: number;
  maxEjectionMs: number;
  maxEjectionPercent: number;
}

/**
 * The outlier block (defaults from `config/resolve`) in the detector's names.
 * @example
 * ```ts
 * const s = outlierSettings({ consecutive_5xx: 3 });
 * ```
 */
export function outlierSettings(c: ResolvedOutlier | OutlierConfig | undefined): OutlierSettings {
  const r = resolveOutlier(c);
  return {
    consecutive5xx: r.consecutive_5xx,
    consecutiveGateway: r.consecutive_gateway_failure,
    failurePercentage: r.failure_percentage_threshold,
    requestVolume: r.failure_percentage_request_volume,
    intervalMs: r.interval_ms,
    baseEjectionMs: r.base_ejection_time_ms,
    maxEjectionMs: r.max_ejection_time_ms,
    maxEjectionPercent: r.max_ejection_percent,
  };
}

/**
 * Decides ejections for the hosts of one cluster.
 *
 * @example
 * ```ts
 * const d = new OutlierDetector(outlierSettings({}), systemClock, hosts);
 * d.record(hosts[0], 'error-5xx');
 * ```
 */
export class OutlierDetector {
  /** Ejections made (a Prometheus counter). */
  ejectionsTotal = 0;
  /** Ejections skipped because of max_ejection_percent. */
  ejectionsOverflow = 0;

  constructor(
    readonly settings: OutlierSettings,
    readonly clock: Clock,
    readonly hosts: readonly OutlierHost[],
  ) {}

  /** True while `host` is ejected at `now`. */
  isEjected(host: OutlierHost, now: number): boolean {
    return host.ejectedUntil > now;
  }

  /** Hosts ejected at `now`. */
  ejectedCount(now: number): number {
    let n = 0;
    for (const h of this.hosts) if (h.ejectedUntil > now) n++;
    return n;
  }

  /** Records the outcome of one request to `host`. */
  record(host: OutlierHost, outcome: HostOutcome): void {
    const s = this.settings;
    if (s.failurePercentage !== undefined) {
      const now = this.clock.now();
      if (now - host.windowStart >= s.intervalMs) {
        const judged = host.windowTotal >= s.requestVolume && host.windowTotal > 0;
        const pct = judged ? (host.windowFailures * 100) / host.windowTotal : 0;
        host.windowStart = now;
        host.windowTotal = 0;
        host.windowFailures = 0;
        if (judged && pct >= s.failurePercentage && this.#eject(host, now)) return;
      }
      host.windowTotal++;
      if (outcome !== 'success') host.windowFailures++;
    }
    if (outcome === 'success') {
      host.consecutive5xx = 0;
      host.consecutiveGateway = 0;
      return;
    }
    if (outcome === 'local') return;
    host.consecutive5xx++;
    if (outcome === 'gateway') host.consecutiveGateway++;
    else host.consecutiveGateway = 0;
    if (
      (s.consecutive5xx > 0 && host.consecutive5xx >= s.consecutive5xx) ||
      (s.consecutiveGateway > 0 && host.consecutiveGateway >= s.consecutiveGateway)
    ) {
      this.#eject(host, this.clock.now());
    }
  }

  #eject(host: OutlierHost, now: number): boolean {
    if (host.ejectedUntil > now) return false;
    const s = this.settings;
    const cap =
      s.maxEjectionPercent <= 0
        ? 0
        : Math.max(1, Math.floor((this.hosts.length * s.maxEjectionPercent) / 100));
    if (this.ejectedCount(now) >= cap) {
      this.ejectionsOverflow++;
      host.consecutive5xx = 0;
      host.consecutiveGateway = 0;
      return false;
    }
    // A host that stayed healthy since its last ejection earns one step back per base period.
    if (host.ejections > 0 && host.ejectedUntil > 0) {
      const healthy = Math.floor((now - host.ejectedUntil) / s.baseEjectionMs);
      host.ejections = Math.max(0, host.ejections - healthy);
    }
    host.ejections++;
    host.ejectedUntil = now + Math.min(s.baseEjectionMs * host.ejections, s.maxEjectionMs);
    host.consecutive5xx = 0;
    host.consecutiveGateway = 0;
    host.windowTotal = 0;
    host.windowFailures = 0;
    this.ejectionsTotal++;
    return true;
  }
}
