/**
 * Test helpers: `import { TestClock } from 'tripswitch/testing'`.
 * @module
 */
export { TestClock } from './test-clock.js';
