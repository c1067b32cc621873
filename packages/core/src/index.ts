/**
 * tripswitch: circuit breakers and the policies that go with them.
 * @module
 */
export { type Clock, type TimerHandle, systemClock } from './clock.js';
