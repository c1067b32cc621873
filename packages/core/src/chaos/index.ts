/**
 * Chaos engineering policies: `import { chaosFault, chaosLatency } from 'tripswitch/chaos'`.
 *
 * Each disturbs a fraction of the calls that pass through it (`rate`), can be switched on and off
 * at run time (`enabled`), and draws from a random source that can be seeded, so a game day runs
 * through the same `wrap()` chain the service ships with and a test repeats exactly.
 *
 * @module
 */
export type { ChaosEvents, ChaosKind, ChaosOptions, ChaosPolicy, ChaosStats } from './base.js';
export { type ChaosBehaviorOptions, chaosBehavior } from './behavior.js';
export { InjectedFaultError, isInjectedFaultError } from './errors.js';
export { type ChaosFaultOptions, chaosFault } from './fault.js';
export { type ChaosLatencyOptions, chaosLatency } from './latency.js';
export { type ChaosOutcomeOptions, chaosOutcome } from './outcome.js';
export { seededRandom } from './random.js';
