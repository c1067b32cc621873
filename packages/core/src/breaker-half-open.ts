/**
 * The breaker's open/half-open bookkeeping: the episode record a breaker makes the first time it
 * leaves `closed`, the half-open sample (probe admission and the verdict) and the callers waiting
 * for a probe slot (`halfOpen.waitForProbes`).
 *
 * The verdict depends only on how many probes of the sample failed, never on which finished
 * first; see `HalfOpenOptions`. Transitions stay with the state machine (`breaker-core.ts`):
 * these functions say what should happen, the breaker does it.
 *
 * @module
 */
import type { TimerHandle } from './clock.js';
import type { ColdConfig } from './breaker-options.js';

/**
 * @internal Open/half-open bookkeeping, made on first use: a breaker that never opened does not
 * carry it.
 */
export class Episode {
  openedAt = 0;
  nextAttemptAt = 0;
  /** Consecutive openings (drives the backoff); cleared by a close. */
  openings = 0;
  openFailures: number | undefined = undefined;
  probes = 0;
  probeSuccesses = 0;
  probeFailures = 0;
  halfOpenUntil = 0;
  /** The store said "not yet" to the probe the last admission asked for (see `awaitProbe`). */
  probeDenied = false;
  /** The one timer a breaker may hold: eager half-open, end of the open period, or the half-open deadline. */
  timer: TimerHandle | undefined = undefined;
  waiters: Waiter[] | undefined = undefined;
}

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** @internal A new half-open period: an empty sample. */
export function startSample(ep: Episode): void {
  ep.probes = 0;
  ep.probeSuccesses = 0;
  ep.probeFailures = 0;
}

/** @internal Admits one more probe if the sample has room for it (and counts it as running). */
export function takeProbe(ep: Episode, cfg: ColdConfig): boolean {
  // At most maxProbes at once, and no more than the sample in all: a verdict taken on a sample
  // that grows while probes finish would depend on which finished first.
  if (ep.probes >= cfg.maxProbes || ep.probes + ep.probeSuccesses + ep.probeFailures >= cfg.sample)
    return false;
  ep.probes++;
  return true;
}

/** @internal What a settled probe decides: the transition's reason, or `undefined` (not yet). */
export type ProbeVerdict = 'probe-failed' | 'probe-failure-rate' | 'probe-succeeded' | undefined;

/**
 * @internal Records a probe's outcome and takes the half-open verdict once the sample decides it:
 * the full sample's verdict, announced as soon as the probes not finished yet (running or still
 * to be admitted) cannot change it, so the same failures in any completion order give the same
 * verdict. `probe-failed` and `probe-failure-rate` reopen (with `openFailures` set), and
 * `probe-succeeded` closes; `undefined` leaves a slot free for the next probe.
 */
export function settleProbe(ep: Episode, cfg: ColdConfig, failure: boolean): ProbeVerdict {
  ep.probes--;
  if (failure) ep.probeFailures++;
  else ep.probeSuccesses++;
  const n = cfg.sample;
  const rate = cfg.probeFailureRate;
  const failed = ep.probeFailures;
  const worst = n - ep.probeSuccesses; // failures if every outstanding probe failed
  // Rates as failed / n rather than failed >= rate * n: 0.7 * 10 is 7.000000000000001.
  const reopen = rate === undefined ? failed > 0 : failed / n >= rate;
  if (reopen) {
    ep.openFailures = failed;
    return rate === undefined ? 'probe-failed' : 'probe-failure-rate';
  }
  if (rate === undefined ? worst === 0 : worst / n < rate) return 'probe-succeeded';
  return undefined;
}

/**
 * @internal Waits until {@link wake} (a probe slot freed up or the state changed), or rejects
 * with the signal's reason when it aborts first (the waiter then leaves the queue).
 */
export function waitForProbe(ep: Episode, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const w: Waiter = { resolve, reject, signal, onAbort: undefined };
    if (signal !== undefined) {
      w.onAbort = () => {
        const list = ep.waiters;
        const i = list === undefined ? -1 : list.indexOf(w);
        if (i >= 0) list!.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', w.onAbort, { once: true });
    }
    if (ep.waiters === undefined) ep.waiters = [w];
    else ep.waiters.push(w);
  });
}

/** @internal Lets every waiter try again (a probe slot freed up or the state changed). */
export function wake(ep: Episode | undefined): void {
  const list = ep?.waiters;
  if (list === undefined || list.length === 0) return;
  ep!.waiters = undefined;
  for (const w of list) {
    if (w.onAbort !== undefined) w.signal!.removeEventListener('abort', w.onAbort);
    w.resolve();
  }
}
