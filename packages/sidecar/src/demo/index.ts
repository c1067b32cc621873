/**
 * The cascade demo (`tripswitch demo`): Service B, Service A, a load generator, the report.
 * @module
 */
export {
  type LoadOptions,
  type LoadResult,
  type Route,
  runLoad,
  runWriter,
  type Sample,
  splitClients,
  type WriterOptions,
  type WriterResult,
  type WriteSample,
} from './load.js';
export {
  fmtMs,
  fmtRatio,
  formatCarryOver,
  formatTable,
  formatTimeline,
  formatWrites,
  type PhaseDef,
  percentile,
  phaseStats,
  type RouteStats,
  routeStats,
  type TimelineEntry,
  type WriteStats,
} from './report.js';
export {
  type Comparison,
  type DemoOptions,
  type DemoResult,
  demoSettings,
  describeModel,
  formatReport,
  type RunLabel,
  type RunResult,
  runDemo,
} from './run.js';
export { type DemoMetrics, type DemoMetricsOptions, demoMetrics, type Outcome } from './metrics.js';
export {
  type ProtectedRead,
  type ProtectedReadOptions,
  protectedRead,
  type ReadAnswer,
  reasonOf,
} from './read-policy.js';
export {
  DEFAULT_DEMO_PORT,
  DemoPortError,
  type DemoServices,
  type DemoServicesOptions,
  demoMode,
  formatServices,
  startDemoServices,
} from './serve.js';
export {
  BREAKER_NAME,
  type OrderWrite,
  type ServiceA,
  type ServiceAOptions,
  startServiceA,
  WorkerPool,
} from './service-a.js';
export {
  isUpstreamMode,
  startUpstream,
  UPSTREAM_MODES,
  type Upstream,
  type UpstreamMode,
  type UpstreamOptions,
  type UpstreamStats,
} from './upstream.js';
