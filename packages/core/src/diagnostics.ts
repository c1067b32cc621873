/**
 * `node:diagnostics_channel` channels on which every breaker publishes the same payloads as its
 * events, so tracing and metrics tools can observe every breaker in the process without a
 * reference to any of them.
 *
 * Breakers publish only when a channel has subscribers, and build the payload only then.
 *
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';

/**
 * Names of the channels breakers publish on.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * import { breakerChannels } from 'tripswitch';
 *
 * diagnosticsChannel.subscribe(breakerChannels.state, (e) => console.log(e));
 * ```
 */
export const breakerChannels = {
  /** `{ name, from, to, reason, at }` on every state change. */
  state: 'tripswitch:breaker:state',
  /** `{ name, duration }` for every success. */
  success: 'tripswitch:breaker:success',
  /** `{ name, error, duration }` for every failure. */
  failure: 'tripswitch:breaker:failure',
  /** `{ name, state, retryAfter }` for every rejected call. */
  rejected: 'tripswitch:breaker:rejected',
  /** `{ name, error, duration }` for every neutral outcome. */
  neutral: 'tripswitch:breaker:neutral',
} as const;

/** The channel objects, created once per process (channels are global by name). */
export const channels = {
  state: diagnosticsChannel.channel(breakerChannels.state),
  success: diagnosticsChannel.channel(breakerChannels.success),
  failure: diagnosticsChannel.channel(breakerChannels.failure),
  rejected: diagnosticsChannel.channel(breakerChannels.rejected),
  neutral: diagnosticsChannel.channel(breakerChannels.neutral),
};
