/**
 * A tuning run: replay every trace under every candidate, combine the measures, find the Pareto
 * front and choose; `run` is the CLI's `run` command around it.
 * @module
 */
import { writeFileSync } from 'node:fs';
import { type Candidate, candidate, defaultGrid, expandGrid, loadCandidates } from './candidates.js';
import { chartHtml } from './chart.js';
import { choose, type Objective, objectives, paretoFront } from './pareto.js';
import { combineMetrics, type ReplayResult, replay } from './replay.js';
import { formatTable, optionsSnippet, sidecarYaml } from './report.js';
import { synthesize } from './synth.js';
import { busiestName, findIncidents, onlyName, readTrace, type Trace } from './trace.js';

/**
 * What {@link tune} found.
 *
 * @example
 * ```ts
 * const { results, front, chosen } = tune([trace], candidates);
 * console.log(results[chosen]!.candidate.settings);
 * ```
 */
export interface TuneResult {
  /** Per candidate, its measures combined over every trace (transitions: of the first trace). */
  results: ReplayResult[];
  /** Indices into `results` on the Pareto front. */
  front: number[];
  /** Index of the chosen candidate (see `choose`). */
  chosen: number;
  /** Calls replayed in all, and per second of wall time. */
  calls: number;
  callsPerSecond: number;
}

/**
 * Replays each trace (one breaker name each) under each candidate and recommends one.
 *
 * @example
 * ```ts
 * const traces = [synthesize({ shape: 'healthy', seed: 1 }), synthesize({ shape: 'hard-outage', seed: 1 })];
 * const { results, chosen } = tune(traces, expandGrid(defaultGrid));
 * ```
 */
export function tune(
  traces: readonly Trace[],
  candidates: readonly Candidate[],
  weights: Partial<Record<Objective, number>> = {},
): TuneResult {
  if (traces.length === 0) throw new RangeError('tune: no traces');
  if (candidates.length === 0) throw new RangeError('tune: no candidates');
  const began = performance.now();
  let calls = 0;
  const results: ReplayResult[] = candidates.map((c) => {
    const runs = traces.map((t) => {
      calls += t.length;
      return replay(t, c);
    });
    return { ...runs[0]!, metrics: combineMetrics(runs.map((r) => r.metrics)) };
  });
  const secs = (performance.now() - began) / 1000;
  const metrics = results.map((r) => r.metrics);
  const front = paretoFront(metrics);
  const chosen = choose(metrics, front, weights);
  return {
    results,
    front,
    chosen,
    calls,
    callsPerSecond: secs > 0 ? calls / secs : Number.POSITIVE_INFINITY,
  };
}

interface Writable {
  write(s: string): unknown;
}

/** The CLI's `run`: reads files, tunes, prints and writes the chart and YAML. */
export async function run(o: {
  traces: string[];
  config?: string;
  name?: string;
  html?: string;
  yaml?: string;
  cluster?: string;
  weight?: string[];
  out: Writable;
}): Promise<TuneResult> {
  const weights: Partial<Record<Objective, number>> = {};
  for (const kv of o.weight ?? []) {
    const [k, v] = kv.split('=');
    if (!objectives.includes(k as Objective))
      throw new RangeError(`--weight: objective must be one of ${objectives.join(', ')}, got "${k}"`);
    const w = Number(v);
    if (!(w >= 0)) throw new RangeError(`--weight ${k}: expected a number >= 0, got "${v}"`);
    weights[k as Objective] = w;
  }
  const candidates = o.config ? loadCandidates(o.config) : expandGrid(defaultGrid);
  const traces: Trace[] = [];
  for (const file of o.traces) {
    const full = await readTrace(file);
    const name = o.name ?? busiestName(full);
    let t = onlyName(full, name);
    if (t.incidents.length === 0) {
      const found = findIncidents(t);
      t = { ...t, incidents: found };
      o.out.write(
        `${file}: no incidents recorded; found ${found.length} by error rate (>= 25% over 5 s buckets)\n`,
      );
    }
    o.out.write(
      `${file}: ${t.length.toLocaleString('en')} calls of "${name}", ${t.incidents.length} incident(s)\n`,
    );
    traces.push(t);
  }
  const result = tune(traces, candidates, weights);
  o.out.write(
    `replayed ${candidates.length} candidates: ${result.calls.toLocaleString('en')} calls at ${Math.round(result.callsPerSecond).toLocaleString('en')} calls/s\n\n`,
  );
  o.out.write(formatTable(result.results, result.front, result.chosen));
  const best = result.results[result.chosen]!;
  const name = traces[0]!.names[0] ?? 'default';
  o.out.write(
    `\n* = on the Pareto front (${result.front.length} of ${candidates.length}); > = chosen: ${best.candidate.label}\n\n`,
  );
  o.out.write(`as tripswitch options:\n  ${optionsSnippet(name, best.candidate.settings)}\n`);
  const yaml = sidecarYaml(best.candidate.settings, { cluster: o.cluster ?? name });
  o.out.write(`as sidecar YAML:\n${yaml}`);
  if (o.yaml) writeFileSync(o.yaml, yaml);
  if (o.html) {
    const shown = result.front.slice(0, 30);
    const chosenAt = shown.indexOf(result.chosen);
    writeFileSync(
      o.html,
      chartHtml(
        traces[0]!,
        shown.map((i) => ({
          ...result.results[i]!,
          candidate: {
            ...result.results[i]!.candidate,
            label: `#${i} ${result.results[i]!.candidate.label}`,
          },
        })),
        { title: `tripswitch-tune: ${o.traces[0]}`, chosen: chosenAt >= 0 ? chosenAt : undefined },
      ),
    );
    o.out.write(`chart: ${o.html}\n`);
  }
  return result;
}

/** The CLI's `bench`: replay speed on a synthesized hard outage of about `calls` calls. */
export async function runBench(calls: number, out: Writable): Promise<void> {
  if (!(calls >= 1000)) throw new RangeError(`--calls must be >= 1000, got ${calls}`);
  const durationMs = 1_000_000;
  const trace = synthesize({ shape: 'hard-outage', seed: 1, rate: (calls / durationMs) * 1000, durationMs });
  out.write(`trace: ${trace.length.toLocaleString('en')} calls (hard outage, ${durationMs / 1000} s)\n`);
  for (const settings of [
    { trip: { kind: 'consecutive' as const, threshold: 5 } },
    { trip: { kind: 'count' as const, windowSize: 100, minimumCalls: 20 } },
    { trip: { kind: 'time' as const, windowMs: 10_000, minimumCalls: 20 }, openDuration: 5_000 },
  ]) {
    const c = candidate(settings);
    const r = replay(trace, c);
    out.write(
      `  ${c.label.padEnd(40)} ${Math.round(r.callsPerSecond).toLocaleString('en').padStart(12)} calls/s\n`,
    );
  }
}
