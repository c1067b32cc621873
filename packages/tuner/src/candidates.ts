/**
 * Candidate breaker configurations: listed in a YAML file (the sidecar's `breaker` block names), or
 * a grid over trip rule, thresholds, windows, minimum calls, open duration and half-open settings.
 * Each candidate is checked by building a real breaker with it, so core's validation names the field.
 * @module
 */
import { readFileSync } from 'node:fs';
import {
  type CircuitBreakerOptions,
  type ConsecutiveTripOptions,
  type CountTripOptions,
  circuitBreaker,
  type TimeTripOptions,
} from 'tripswitch';
import { TestClock } from 'tripswitch/testing';
import { parse } from 'yaml';

/**
 * The breaker settings a candidate tries: `circuitBreaker()` options that can be written as YAML
 * (the sidecar's `breaker` block), so no custom predicate.
 *
 * @example
 * ```ts
 * const s: BreakerSettings = { trip: { kind: 'time', windowMs: 10_000, minimumCalls: 20 }, openDuration: 5_000 };
 * ```
 */
export interface BreakerSettings {
  trip?: ConsecutiveTripOptions | CountTripOptions | TimeTripOptions;
  openDuration?: CircuitBreakerOptions['openDuration'];
  halfOpen?: CircuitBreakerOptions['halfOpen'];
  eagerHalfOpen?: boolean;
}

/**
 * A named candidate.
 *
 * @example
 * ```ts
 * const c: Candidate = { label: 'consecutive 5', settings: { trip: { kind: 'consecutive', threshold: 5 } } };
 * ```
 */
export interface Candidate {
  label: string;
  settings: BreakerSettings;
}

/**
 * A grid: every trip entry's array-valued fields are expanded (a cartesian product), then crossed
 * with every `openDuration` and `halfOpen` value.
 *
 * @example
 * ```ts
 * const grid: CandidateGrid = {
 *   trip: [{ kind: 'consecutive', threshold: [3, 5, 10] }, { kind: 'time', windowMs: [10_000, 30_000], failureRateThreshold: 0.5 }],
 *   openDuration: [2_000, 10_000],
 * };
 * ```
 */
export interface CandidateGrid {
  trip: Array<Record<string, unknown> & { kind: 'consecutive' | 'count' | 'time' }>;
  openDuration?: Array<NonNullable<BreakerSettings['openDuration']>>;
  halfOpen?: Array<NonNullable<BreakerSettings['halfOpen']>>;
  eagerHalfOpen?: boolean[];
}

/**
 * The grid `tripswitch-tune run` uses without `--config`: the README guide's rules and their
 * neighbours (17 trip rules x 3 open durations x 2 half-open settings = 102 candidates).
 *
 * @example
 * ```ts
 * const candidates = expandGrid(defaultGrid);
 * ```
 */
export const defaultGrid: CandidateGrid = {
  trip: [
    { kind: 'consecutive', threshold: [3, 5, 10] },
    { kind: 'count', windowSize: [20, 50, 100], minimumCalls: 10, failureRateThreshold: [0.3, 0.5] },
    { kind: 'time', windowMs: [10_000, 30_000], minimumCalls: [10, 20], failureRateThreshold: [0.3, 0.5] },
  ],
  openDuration: [2_000, 5_000, 15_000],
  halfOpen: [{ maxProbes: 1 }, { maxProbes: 3, successesToClose: 3 }],
};

const SETTINGS_KEYS = new Set([
  'label',
  'trip',
  'openDuration',
  'halfOpen',
  'eagerHalfOpen',
  'enabled',
  'failureStatuses',
]);

function product(o: Record<string, unknown>): Record<string, unknown>[] {
  let out: Record<string, unknown>[] = [{}];
  for (const [k, v] of Object.entries(o)) {
    const values = Array.isArray(v) ? v : [v];
    if (values.length === 0) throw new RangeError(`grid: ${k} is an empty list`);
    out = out.flatMap((partial) => values.map((x) => ({ ...partial, [k]: x })));
  }
  return out;
}

/**
 * Every candidate of a grid, validated.
 *
 * @example
 * ```ts
 * const candidates = expandGrid({ trip: [{ kind: 'consecutive', threshold: [3, 5] }], openDuration: [5_000] });
 * ```
 */
export function expandGrid(grid: CandidateGrid): Candidate[] {
  if (!grid || !Array.isArray(grid.trip) || grid.trip.length === 0)
    throw new TypeError('grid: trip must be a non-empty list of trip rules');
  const out: Candidate[] = [];
  for (const [ti, t] of grid.trip.entries()) {
    if (typeof t !== 'object' || t === null) throw new TypeError(`grid: trip[${ti}] must be an object`);
    for (const trip of product(t)) {
      for (const openDuration of grid.openDuration ?? [undefined])
        for (const halfOpen of grid.halfOpen ?? [undefined])
          for (const eagerHalfOpen of grid.eagerHalfOpen ?? [undefined]) {
            const settings: BreakerSettings = { trip: trip as unknown as BreakerSettings['trip'] };
            if (openDuration !== undefined) settings.openDuration = openDuration;
            if (halfOpen !== undefined) settings.halfOpen = halfOpen;
            if (eagerHalfOpen !== undefined) settings.eagerHalfOpen = eagerHalfOpen;
            out.push(candidate(settings, `grid trip[${ti}]`));
          }
    }
  }
  return out;
}

/**
 * Checks settings by building a breaker with them, and names them.
 *
 * @example
 * ```ts
 * const c = candidate({ trip: { kind: 'count', windowSize: 50 } }); // c.label === 'count 50 calls >=50% min 20'
 * ```
 */
export function candidate(settings: BreakerSettings, where = 'candidate', label?: string): Candidate {
  if (typeof settings !== 'object' || settings === null) throw new TypeError(`${where}: must be an object`);
  for (const k of Object.keys(settings))
    if (!SETTINGS_KEYS.has(k))
      throw new TypeError(
        `${where}: unknown field "${k}" (expected trip, openDuration, halfOpen, eagerHalfOpen)`,
      );
  const kind = (settings.trip as { kind?: unknown } | undefined)?.kind;
  if (settings.trip !== undefined && kind !== 'consecutive' && kind !== 'count' && kind !== 'time')
    throw new TypeError(`${where}: trip.kind must be consecutive, count or time, got ${String(kind)}`);
  const clean: BreakerSettings = {};
  if (settings.trip !== undefined) clean.trip = settings.trip;
  if (settings.openDuration !== undefined) clean.openDuration = settings.openDuration;
  if (settings.halfOpen !== undefined) clean.halfOpen = settings.halfOpen;
  if (settings.eagerHalfOpen !== undefined) clean.eagerHalfOpen = settings.eagerHalfOpen;
  try {
    circuitBreaker({ ...clean, clock: new TestClock() }).dispose();
  } catch (err) {
    throw new TypeError(`${where}: ${(err as Error).message}`, { cause: err });
  }
  return { label: label ?? describeSettings(clean), settings: clean };
}

const secs = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/**
 * A short human name for settings, used as a candidate's label.
 *
 * @example
 * ```ts
 * describeSettings({ trip: { kind: 'consecutive', threshold: 5 }, openDuration: 5_000 }); // 'consecutive 5, open 5s'
 * ```
 */
export function describeSettings(s: BreakerSettings): string {
  const t = s.trip ?? { kind: 'consecutive' as const };
  const parts: string[] = [];
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  switch (t.kind) {
    case 'consecutive':
      parts.push(`consecutive ${t.threshold ?? 5}`);
      break;
    case 'count':
      parts.push(
        `count ${t.windowSize ?? t.window ?? 100} calls >=${pct(t.failureRateThreshold ?? 0.5)} min ${t.minimumCalls ?? 20}`,
      );
      break;
    case 'time': {
      const rule =
        t.failureCount !== undefined && t.failureRateThreshold === undefined
          ? `${t.failureCount} failures`
          : `>=${pct(t.failureRateThreshold ?? 0.5)}${t.failureCount !== undefined ? ` or ${t.failureCount} failures` : ''}`;
      parts.push(`time ${secs(t.windowMs ?? 30_000)} ${rule} min ${t.minimumCalls ?? 5}`);
      break;
    }
  }
  if ('slowCallDuration' in t && t.slowCallDuration !== undefined)
    parts.push(`slow>${secs(t.slowCallDuration)} ${pct(t.slowCallRateThreshold ?? 1)}`);
  const o = s.openDuration;
  if (typeof o === 'number') parts.push(`open ${secs(o)}`);
  else if (o !== undefined) parts.push(`open ${secs(o.base)}..${secs(o.max ?? 60_000)}`);
  if (s.halfOpen?.maxProbes !== undefined || s.halfOpen?.successesToClose !== undefined)
    parts.push(`probes ${s.halfOpen.maxProbes ?? 1}/${s.halfOpen.successesToClose ?? 1}`);
  return parts.join(', ');
}

/**
 * Candidates from YAML text: a `candidates:` list of breaker blocks (each with an optional
 * `label`), a `grid:` (see {@link CandidateGrid}), or both.
 *
 * @example
 * ```ts
 * const candidates = parseCandidates('candidates:\n  - trip: { kind: consecutive, threshold: 5 }\n');
 * ```
 */
export function parseCandidates(text: string, file = '<candidates>'): Candidate[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new SyntaxError(`${file}: ${(err as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null)
    throw new TypeError(`${file}: expected a map with candidates and/or grid`);
  const { candidates, grid, ...rest } = doc as { candidates?: unknown; grid?: unknown };
  const extra = Object.keys(rest);
  if (extra.length) throw new TypeError(`${file}: unknown key "${extra[0]}" (expected candidates, grid)`);
  const out: Candidate[] = [];
  if (candidates !== undefined) {
    if (!Array.isArray(candidates)) throw new TypeError(`${file}: candidates must be a list`);
    for (const [i, c] of candidates.entries()) {
      const { label, ...settings } = (c ?? {}) as { label?: unknown } & BreakerSettings;
      if (label !== undefined && typeof label !== 'string')
        throw new TypeError(`${file}: candidates[${i}].label must be a string`);
      out.push(candidate(settings, `${file}: candidates[${i}]`, label));
    }
  }
  if (grid !== undefined) {
    try {
      out.push(...expandGrid(grid as CandidateGrid));
    } catch (err) {
      throw new TypeError(`${file}: ${(err as Error).message}`, { cause: err });
    }
  }
  if (out.length === 0) throw new TypeError(`${file}: no candidates (give candidates and/or grid)`);
  return out;
}

/**
 * {@link parseCandidates} on a file.
 *
 * @example
 * ```ts
 * const candidates = loadCandidates('candidates.yaml');
 * ```
 */
export function loadCandidates(file: string): Candidate[] {
  return parseCandidates(readFileSync(file, 'utf8'), file);
}
