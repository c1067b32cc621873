/**
 * @tripswitch/sidecar: the Envoy-style circuit-breaking proxy behind the `tripswitch` CLI, usable
 * as a library too.
 *
 * @example
 * ```ts
 * import { loadConfig, Sidecar, startAdmin } from '@tripswitch/sidecar';
 * const sidecar = new Sidecar(loadConfig('tripswitch.yaml'));
 * await sidecar.start();
 * await startAdmin(sidecar);
 * ```
 * @module
 */
export {
  type AdminHandler,
  type AdminOptions,
  type AdminServer,
  breakersJson,
  isLoopback,
  type SidecarRegistry,
  sidecarRegistry,
  startAdmin,
} from './admin/admin.js';
export {
  type ConfigProblem,
  ConfigError,
  isConfigError,
  loadConfig,
  type ParseConfigOptions,
  parseConfig,
} from './config/load.js';
export * from './config/schema.js';
export { toEnvoy, toIstio } from './export/export.js';
export { Cluster, type ClusterCounters } from './proxy/cluster.js';
export { type Logger, stderrLogger } from './proxy/logger.js';
export { Sidecar, type SidecarOptions } from './proxy/server.js';
export type { SharedPlan, WorkerShare } from './proxy/shared-plan.js';
export {
  reusePortSupported,
  type StartWorkersOptions,
  startWorkers,
  type WorkerPool,
  WorkersError,
} from './proxy/workers.js';
export { loadSharedState, type SharedStore, type SharedStoreFactory } from './shared-state.js';
export { type ClusterRecorder, loadTraceRecorder, type TraceRecorderFactory } from './record-trace.js';
export * from './dashboard/index.js';
export { type DemoOptions, type DemoResult, formatReport, runDemo } from './demo/run.js';
