/**
 * @tripswitch/tuner: choose breaker settings from traffic. Synthesize (or record) a trace, replay it
 * through real tripswitch breakers on a TestClock under each candidate, and pick from the Pareto front.
 *
 * @example
 * ```ts
 * import { expandGrid, defaultGrid, replay, synthesize } from '@tripswitch/tuner';
 * const trace = synthesize({ shape: 'hard-outage', seed: 1 });
 * for (const c of expandGrid(defaultGrid)) console.log(c.label, replay(trace, c).metrics);
 * ```
 * @module
 */
export {
  type BreakerSettings,
  type Candidate,
  type CandidateGrid,
  candidate,
  defaultGrid,
  describeSettings,
  expandGrid,
  loadCandidates,
  parseCandidates,
} from './candidates.js';
export {
  combineMetrics,
  promisedDetectionMs,
  type ReplayMetrics,
  type ReplayResult,
  replay,
  type Transition,
} from './replay.js';
export { type SynthOptions, synthesize, type TraceShape, traceShapes } from './synth.js';
export {
  busiestName,
  type FindIncidentsOptions,
  findIncidents,
  formatTrace,
  type Incident,
  onlyName,
  parseTrace,
  readTrace,
  type Trace,
  type TraceCall,
  traceChunks,
  traceFromCalls,
  writeTrace,
} from './trace.js';
export { type ChartOptions, chartHtml } from './chart.js';
export { choose, dominates, type Objective, objectives, paretoFront } from './pareto.js';
export { formatTable, optionsSnippet, type SidecarYamlOptions, sidecarYaml } from './report.js';
export { type TuneResult, tune } from './run.js';
export { type RecorderStats, type RecordOptions, recordTrace, type TraceRecorder } from './record.js';
