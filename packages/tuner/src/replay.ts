/**
 * Replays a trace through a real tripswitch breaker on a TestClock. Each call is admitted or refused
 * at its start time and settles (success or failure, as the trace says) at start + duration, so
 * concurrent calls, slow calls and probes behave as they would in production: a refused call is not
 * sent, and a probe gets whatever the trace's call at that moment got.
 * @module
 */
import { type CircuitState, circuitBreaker, type Permit } from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import type { BreakerSettings, Candidate } from './candidates.js';
import type { Incident, Trace } from './trace.js';

/**
 * A state change seen during a replay.
 *
 * @example
 * ```ts
 * const opens = result.transitions.filter((t) => t.to === 'open');
 * ```
 */
export interface Transition {
  at: number;
  to: CircuitState;
}

/**
 * What a candidate did over a trace. Every measure is better when smaller.
 *
 * @example
 * ```ts
 * const { detectMs, letThrough, falseOpens, refusedHealthy, closeMs, probes } = result.metrics;
 * ```
 */
export interface ReplayMetrics {
  /** Worst time from an incident's start to the breaker opening (0 when already open); Infinity when an incident never opened it. */
  detectMs: number;
  /** Incidents the breaker never opened in. */
  missed: number;
  /** Calls sent to the dependency during incidents (probes included). */
  letThrough: number;
  /** Of those, calls that failed. */
  letThroughFailures: number;
  /** Openings outside incidents. */
  falseOpens: number;
  /** Calls refused outside incidents (they would have been served). */
  refusedHealthy: number;
  /** Worst time from an incident's end to the breaker closing (0 when closed then); Infinity when it stayed open to the trace's end. */
  closeMs: number;
  /** Calls admitted as half-open probes. */
  probes: number;
  /** Calls sent, and calls refused, in all. */
  sent: number;
  refused: number;
}

/**
 * One candidate's replay: its measures and its state changes (for the chart).
 *
 * @example
 * ```ts
 * const r = replay(trace, { label: 'count 50%', settings: { trip: { kind: 'count' } } });
 * console.log(r.metrics, r.callsPerSecond);
 * ```
 */
export interface ReplayResult {
  candidate: Candidate;
  metrics: ReplayMetrics;
  transitions: Transition[];
  /** Calls replayed per second of wall time (the replay's own speed). */
  callsPerSecond: number;
}

/**
 * Replays `trace` (one breaker: filter with `onlyName` first when it has several names) under one
 * candidate. Incidents come from the trace (pass `incidents` to override, e.g. `findIncidents`).
 *
 * @example
 * ```ts
 * const trace = synthesize({ shape: 'hard-outage', seed: 1 });
 * const { metrics } = replay(trace, { label: 'c5', settings: { trip: { kind: 'consecutive', threshold: 5 } } });
 * ```
 */
export function replay(
  trace: Trace,
  candidate: Candidate,
  incidents: readonly Incident[] = trace.incidents,
): ReplayResult {
  if (trace.names.length > 1)
    throw new RangeError(
      `replay: the trace has ${trace.names.length} breaker names (${trace.names.slice(0, 5).join(', ')}); replay one with onlyName(trace, name)`,
    );
  const began = performance.now();
  const n = trace.length;
  const clock = new TestClock(n > 0 ? trace.start[0]! : 0);
  const breaker = circuitBreaker({ ...candidate.settings, name: trace.names[0] ?? 'default', clock });
  const transitions: Transition[] = [];
  breaker.on('stateChange', (e) => transitions.push({ at: e.at, to: e.to }));

  // A binary min-heap of in-flight calls keyed by settle time (parallel arrays: no object per call).
  const heapT: number[] = [];
  const heapP: Permit[] = [];
  const heapF: number[] = [];
  const push = (t: number, p: Permit, f: number) => {
    let i = heapT.length;
    heapT.push(t);
    heapP.push(p);
    heapF.push(f);
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (heapT[up]! <= t) break;
      heapT[i] = heapT[up]!;
      heapP[i] = heapP[up]!;
      heapF[i] = heapF[up]!;
      i = up;
    }
    heapT[i] = t;
    heapP[i] = p;
    heapF[i] = f;
  };
  const settleTop = () => {
    const t = heapT[0]!;
    const p = heapP[0]!;
    const f = heapF[0]!;
    const lastT = heapT.pop()!;
    const lastP = heapP.pop()!;
    const lastF = heapF.pop()!;
    const size = heapT.length;
    if (size > 0) {
      let i = 0;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= size) break;
        if (c + 1 < size && heapT[c + 1]! < heapT[c]!) c++;
        if (heapT[c]! >= lastT) break;
        heapT[i] = heapT[c]!;
        heapP[i] = heapP[c]!;
        heapF[i] = heapF[c]!;
        i = c;
      }
      heapT[i] = lastT;
      heapP[i] = lastP;
      heapF[i] = lastF;
    }
    const now = clock.now();
    if (t > now) clock.advance(t - now);
    if (f) p.failure();
    else p.success();
  };

  let k = 0; // the first incident not over at the current call's start
  let letThrough = 0;
  let letThroughFailures = 0;
  let refusedHealthy = 0;
  let probes = 0;
  let sent = 0;
  let refused = 0;
  const { start, duration, failed } = trace;
  for (let i = 0; i < n; i++) {
    const t = start[i]!;
    while (heapT.length > 0 && heapT[0]! <= t) settleTop();
    const now = clock.now();
    if (t > now) clock.advance(t - now);
    while (k < incidents.length && incidents[k]!.end <= t) k++;
    const inIncident = k < incidents.length && incidents[k]!.start <= t;
    const permit = breaker.tryAcquire();
    if (permit === undefined) {
      refused++;
      if (!inIncident) refusedHealthy++;
      continue;
    }
    sent++;
    if (breaker.state === 'half-open') probes++;
    if (inIncident) {
      letThrough++;
      letThroughFailures += failed[i]!;
    }
    push(t + duration[i]!, permit, failed[i]!);
  }
  while (heapT.length > 0) settleTop();
  breaker.dispose();

  const metrics = judge(transitions, incidents, {
    letThrough,
    letThroughFailures,
    refusedHealthy,
    probes,
    sent,
    refused,
  });
  const secs = (performance.now() - began) / 1000;
  return { candidate, metrics, transitions, callsPerSecond: secs > 0 ? n / secs : Number.POSITIVE_INFINITY };
}

/** The measures that need the whole run: detection and closing times, false opens. */
function judge(
  transitions: readonly Transition[],
  incidents: readonly Incident[],
  counts: Pick<
    ReplayMetrics,
    'letThrough' | 'letThroughFailures' | 'refusedHealthy' | 'probes' | 'sent' | 'refused'
  >,
): ReplayMetrics {
  const stateAt = (t: number): CircuitState => {
    let s: CircuitState = 'closed';
    for (const x of transitions) {
      if (x.at > t) break;
      s = x.to;
    }
    return s;
  };
  let detectMs = 0;
  let closeMs = 0;
  let missed = 0;
  for (const inc of incidents) {
    let detect = Number.POSITIVE_INFINITY;
    if (stateAt(inc.start) !== 'closed') detect = 0;
    else
      for (const x of transitions)
        if (x.to === 'open' && x.at >= inc.start && x.at < inc.end) {
          detect = x.at - inc.start;
          break;
        }
    if (detect === Number.POSITIVE_INFINITY) missed++;
    detectMs = Math.max(detectMs, detect);
    let close = 0;
    if (stateAt(inc.end) !== 'closed') {
      close = Number.POSITIVE_INFINITY;
      for (const x of transitions)
        if (x.to === 'closed' && x.at >= inc.end) {
          close = x.at - inc.end;
          break;
        }
    }
    closeMs = Math.max(closeMs, close);
  }
  let falseOpens = 0;
  let j = 0;
  for (const x of transitions) {
    if (x.to !== 'open') continue;
    while (j < incidents.length && incidents[j]!.end <= x.at) j++;
    if (!(j < incidents.length && incidents[j]!.start <= x.at)) falseOpens++;
  }
  return { detectMs, missed, closeMs, falseOpens, ...counts };
}

/**
 * Adds up one candidate's measures over several traces (worst times, summed counts).
 *
 * @example
 * ```ts
 * const overall = combineMetrics(traces.map((t) => replay(t, candidate).metrics));
 * ```
 */
export function combineMetrics(all: readonly ReplayMetrics[]): ReplayMetrics {
  const out: ReplayMetrics = {
    detectMs: 0,
    missed: 0,
    letThrough: 0,
    letThroughFailures: 0,
    falseOpens: 0,
    refusedHealthy: 0,
    closeMs: 0,
    probes: 0,
    sent: 0,
    refused: 0,
  };
  for (const m of all) {
    out.detectMs = Math.max(out.detectMs, m.detectMs);
    out.closeMs = Math.max(out.closeMs, m.closeMs);
    out.missed += m.missed;
    out.letThrough += m.letThrough;
    out.letThroughFailures += m.letThroughFailures;
    out.falseOpens += m.falseOpens;
    out.refusedHealthy += m.refusedHealthy;
    out.probes += m.probes;
    out.sent += m.sent;
    out.refused += m.refused;
  }
  return out;
}

/**
 * The longest a candidate's trip rule takes, by its own definition, to open once every call
 * fails from `incident.start` on (a hard outage): the time by which the calls the rule needs have
 * settled, counted from when the calls started before the incident have all settled. `undefined`
 * when the rule makes no promise about failures (a slow-call-only rule).
 *
 * @example
 * ```ts
 * const bound = promisedDetectionMs({ trip: { kind: 'consecutive', threshold: 5 } }, trace, trace.incidents[0]!);
 * ```
 */
export function promisedDetectionMs(
  settings: BreakerSettings,
  trace: Trace,
  incident: Incident,
): number | undefined {
  const trip = settings.trip ?? { kind: 'consecutive' as const, threshold: 5 };
  const { start, duration } = trace;
  // Calls in flight when the incident starts may still succeed after it; the promise starts after them.
  let from = incident.start;
  let i = 0;
  for (; i < trace.length && start[i]! < incident.start; i++) from = Math.max(from, start[i]! + duration[i]!);
  while (i < trace.length && start[i]! < from) i++;
  let i2 = i;
  // The time by which the first `calls` calls started at or after `from` have all settled.
  const settledAfter = (calls: number): number | undefined => {
    let end = from;
    for (let c = 0; c < calls; c++, i2++) {
      if (i2 >= trace.length) return undefined;
      end = Math.max(end, start[i2]! + duration[i2]!);
    }
    return end - incident.start;
  };
  switch (trip.kind) {
    case 'consecutive':
      return settledAfter(trip.threshold ?? 5);
    case 'count': {
      const rate = trip.failureRateThreshold ?? (trip.slowCallDuration !== undefined ? undefined : 0.5);
      if (rate === undefined) return undefined;
      const size = trip.windowSize ?? trip.window ?? 100;
      return settledAfter(Math.max(Math.ceil(rate * size), trip.minimumCalls ?? 20));
    }
    case 'time': {
      const windowMs = trip.windowMs ?? 30_000;
      const bucketMs = windowMs / (trip.buckets ?? 10);
      const bounds: number[] = [];
      if (trip.failureCount !== undefined) {
        const b = settledAfter(trip.failureCount);
        if (b !== undefined) bounds.push(b);
      }
      const rateOn =
        trip.failureRateThreshold !== undefined ||
        (trip.failureCount === undefined && trip.slowCallDuration === undefined);
      if (rateOn) {
        // Once a whole window (plus the partly filled oldest bucket) lies after `from`, the window
        // holds only failures; the next call to settle then trips it, given the minimum volume.
        const clean = from + windowMs + bucketMs;
        let j = i;
        while (j < trace.length && start[j]! < clean) j++;
        let inWindow = 0;
        for (let w = j - 1; w >= 0 && start[w]! >= clean - windowMs; w--) inWindow++;
        if (j < trace.length && inWindow + 1 >= (trip.minimumCalls ?? 5))
          bounds.push(start[j]! + duration[j]! - incident.start);
      }
      return bounds.length ? Math.min(...bounds) : undefined;
    }
    default:
      return undefined;
  }
}
