/**
 * `node:diagnostics_channel` channels on which every breaker publishes the same payloads as its
 * events, so tracing and metrics tools can observe every breaker in the process without a
 * reference to any of them.
 *
 * Breakers publish only when a channel has subscribers, and build the payload only then.
 *
 * The module is found at load time through `process.getBuiltinModule` (Node 20.16+, 22.3+, Bun,
 * Deno), not imported: a static `node:` import would stop the root entry loading in a browser or a
 * worker without Node compatibility, and top-level await (for a dynamic import) would break
 * `require('tripswitch')`. Where the runtime has no diagnostics channels, breakers publish nothing.
 *
 * @module
 */

/** What breakers use of a `node:diagnostics_channel` Channel. */
export interface ChannelLike {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}

type ProcessLike = { getBuiltinModule?: (id: string) => unknown };
type DiagnosticsLike = { channel?: (name: string) => ChannelLike };

/** `diagnostics_channel.channel` when the runtime has it, else undefined. */
function diagnosticsChannelFactory(): ((name: string) => ChannelLike) | undefined {
  try {
    const proc = (globalThis as { process?: ProcessLike }).process;
    const dc = proc?.getBuiltinModule?.('node:diagnostics_channel') as DiagnosticsLike | undefined;
    const channel = dc?.channel;
    return typeof channel === 'function' ? (name) => channel.call(dc, name) : undefined;
  } catch {
    // A runtime that polyfills process but refuses the module: no channels.
    return undefined;
  }
}

/** A channel nobody can subscribe to: `hasSubscribers` stays false, so nothing is built. */
const silent: ChannelLike = { hasSubscribers: false, publish() {} };

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

const make = diagnosticsChannelFactory();

/**
 * The channel objects, created once per process (channels are global by name); silent ones where
 * the runtime has no `node:diagnostics_channel`.
 */
export const channels: Record<keyof typeof breakerChannels, ChannelLike> = {
  state: make?.(breakerChannels.state) ?? silent,
  success: make?.(breakerChannels.success) ?? silent,
  failure: make?.(breakerChannels.failure) ?? silent,
  rejected: make?.(breakerChannels.rejected) ?? silent,
  neutral: make?.(breakerChannels.neutral) ?? silent,
};
