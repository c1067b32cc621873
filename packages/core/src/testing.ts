/**
 * Test helpers: `import { TestClock, faulty } from 'tripswitch/testing'`.
 * @module
 */
export { type Fault, type FaultCall, type FaultyFunction, type FaultyOptions, faulty } from './faults.js';
export { type SettleOptions, TestClock } from './test-clock.js';
