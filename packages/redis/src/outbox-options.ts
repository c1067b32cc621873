/**
 * The options of `redisOutbox()`, its public types, and their validation (through core's
 * validator, so errors read like core's and name the option).
 *
 * @module
 */
import { hostname } from 'node:os';
import type { Cluster, Redis } from 'ioredis';
import {
  type Backoff,
  type CircuitBreaker,
  type Clock,
  decorrelatedJitterBackoff,
  neverAbortedSignal,
  type Policy,
  type PolicyContext,
  rejectUnknownKeys,
  type Subscription,
  systemClock,
  validator,
  type WriteContext,
  type WriteResult,
} from 'tripswitch';

/**
 * Options of {@link redisOutbox}.
 *
 * @example
 * ```ts
 * redisOutbox({ name: 'orders', url: process.env.REDIS_URL, send: postOrder, orderKey: (o) => o.customerId });
 * ```
 */
export interface RedisOutboxOptions<T, R> {
  /** The queue's name, the same on every instance; keys are `<prefix>:ob:{<name>}:…`. */
  name: string;
  /** Performs one write; `ctx.id` is the same on every attempt (an idempotency key). */
  send: (data: T, ctx: WriteContext) => PromiseLike<R> | R;
  /** @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** An ioredis client (a `Cluster` too) to use instead of `url`; not closed by the outbox. */
  client?: Redis | Cluster;
  /** @default 'tripswitch' */
  prefix?: string;
  /** The downstream's breaker: replays pause while it is open. Also the default `policy`. */
  breaker?: CircuitBreaker;
  /** Runs every send. @default the breaker, or none */
  policy?: Policy<PolicyContext>;
  /**
   * Writes with the same key are replayed in the order they were stored (one at a time, fleet-wide);
   * `undefined` for a write with no order. Without this option writes are independent.
   */
  orderKey?: (data: T) => string | undefined;
  /** A write held by an instance that has not refreshed its claim for this long is taken over. @default 30_000 */
  claimTimeoutMs?: number;
  /** How often an idle instance looks for writes to replay. @default 1_000 */
  pollIntervalMs?: number;
  /** Writes an instance takes from the stream at a time. @default 10 */
  batch?: number;
  /** Sends per write, across the fleet and restarts, before it is dropped with `dead`. @default Infinity */
  maxAttempts?: number;
  /** Which errors mean "try again later"; others drop the write with `dead`. @default every error */
  retryable?: (error: unknown) => boolean;
  /** Wait after a failed replay. @default decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 }) */
  backoff?: Backoff;
  /** Bound on each Redis command. @default 2_000 */
  commandTimeoutMs?: number;
  /** This instance's consumer name in the group. @default host:pid:random */
  consumer?: string;
  /** @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Events of a {@link RedisOutbox}.
 *
 * @example
 * ```ts
 * outbox.on('dead', ({ id, error }) => log.error({ id, err: error }, 'write dropped'));
 * ```
 */
export interface RedisOutboxEvents<T, R> {
  /** A write was stored in the shared stream. */
  queued: { id: string; data: T; error: unknown };
  /** This instance replayed a write and it left the stream. */
  sent: { id: string; data: T; value: R; attempts: number; queuedMs: number };
  /** A replay by this instance failed; it waits `retryInMs` (or for the breaker). */
  replayFailed: { id: string; error: unknown; attempts: number; retryInMs: number };
  /** A write was dropped: not retryable, or out of attempts. */
  dead: { id: string; data: T; error: unknown; attempts: number };
  /** A Redis command failed; replays go on at the next poll. */
  storeError: { operation: 'take' | 'begin' | 'finish' | 'renew' | 'release'; error: unknown };
}

/**
 * An outbox made by {@link redisOutbox}.
 *
 * @example
 * ```ts
 * const r = await outbox.submit(order, req.signal);
 * res.status(r.status === 'sent' ? 201 : 202).end();
 * ```
 */
export interface RedisOutbox<T, R> {
  /** Resolves once the stream and consumer group exist; rejects if Redis could not be reached. */
  readonly ready: Promise<void>;
  /**
   * Sends now; if that fails with a retryable error, stores the write for any instance to replay and
   * resolves `{ status: 'queued' }`. A write whose `orderKey` has writes waiting is stored behind them
   * without being sent now; submits of one key in this instance are decided one after the other.
   * Rejects when the write was neither sent nor stored.
   */
  submit(data: T, signal?: AbortSignal): Promise<WriteResult<R>>;
  /** Stores `data` for replay without sending it now; resolves with its id once stored. */
  enqueue(data: T): Promise<string>;
  on<K extends keyof RedisOutboxEvents<T, R>>(
    event: K,
    listener: (e: RedisOutboxEvents<T, R>[K]) => void,
  ): Subscription;
  /**
   * Stops replaying (aborting a send in flight) and hands the writes this instance holds back to the
   * fleet at once. Stored writes stay in the stream.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export const OWNER = 'redisOutbox';
const KEYS = [
  'name',
  'send',
  'url',
  'client',
  'prefix',
  'breaker',
  'policy',
  'orderKey',
  'claimTimeoutMs',
  'pollIntervalMs',
  'batch',
  'maxAttempts',
  'retryable',
  'backoff',
  'commandTimeoutMs',
  'consumer',
  'random',
  'clock',
] as const;
/** The options, checked and with their defaults. */
export interface OutboxConfig<T, R> {
  stream: string;
  attempts: string;
  keyPrefix: string;
  send: RedisOutboxOptions<T, R>['send'];
  breaker: CircuitBreaker | undefined;
  policy: Policy<PolicyContext>;
  orderKey: ((data: T) => string | undefined) | undefined;
  claimMs: number;
  pollMs: number;
  batch: number;
  maxAttempts: number;
  retryable: (error: unknown) => boolean;
  backoff: Backoff;
  random: () => number;
  clock: Clock;
  consumer: string;
  commandTimeoutMs: number;
  url: string;
  client: Redis | Cluster | undefined;
}

const direct: Policy<PolicyContext> = {
  execute: <X>(fn: (ctx: PolicyContext) => PromiseLike<X> | X, signal?: AbortSignal) =>
    new Promise<X>((resolve) => resolve(fn({ signal: signal ?? neverAbortedSignal }))),
};

/** Checks every option (throwing `InvalidOptionError` naming it) and fills in the defaults. */
export function outboxConfig<T, R>(options: RedisOutboxOptions<T, R>): OutboxConfig<T, R> {
  const v = validator(OWNER);
  const o = v.object('options', options);
  rejectUnknownKeys(OWNER, o, KEYS);
  const name = v.string('name', o.name);
  if (/[{}]/.test(name)) v.fail('name', 'a non-empty string without { or }', name);
  const prefix = o.prefix === undefined ? 'tripswitch' : v.string('prefix', o.prefix);
  if (/[{}]/.test(prefix)) v.fail('prefix', 'a non-empty string without { or }', prefix);
  if (typeof o.send !== 'function') v.fail('send', 'a function (data, ctx) => result', o.send);
  const b = o.breaker as CircuitBreaker | undefined;
  if (b !== undefined && (typeof b !== 'object' || b === null || b.kind !== 'breaker'))
    v.fail('breaker', 'a circuit breaker made by circuitBreaker()', b);
  const p = o.policy as Policy<PolicyContext> | undefined;
  if (p !== undefined && (typeof p !== 'object' || p === null || typeof p.execute !== 'function'))
    v.fail('policy', 'a policy with execute(fn, signal)', p);
  const backoff = o.backoff as Backoff | undefined;
  if (backoff !== undefined && (typeof backoff !== 'object' || typeof backoff?.delay !== 'function'))
    v.fail('backoff', 'a Backoff with delay(retry, previous, random)', backoff);
  const consumer =
    o.consumer === undefined
      ? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
      : v.string('consumer', o.consumer);
  if (consumer === 'released') v.fail('consumer', 'a name other than "released"', consumer);
  if (o.url !== undefined && !/^rediss?:\/\//.test(String(o.url)))
    v.fail('url', 'a redis:// or rediss:// URL', o.url);
  if (o.client !== undefined && o.url !== undefined) v.fail('url', 'absent when client is given', o.url);
  if (o.client !== undefined) {
    const c = o.client as { xadd?: unknown; defineCommand?: unknown };
    if (
      typeof c !== 'object' ||
      c === null ||
      typeof c.xadd !== 'function' ||
      typeof c.defineCommand !== 'function'
    )
      v.fail('client', 'an ioredis client (Redis or Cluster)', o.client);
  }
  const int = (path: string, value: unknown, min: number, max: number) =>
    v.optionalNumber(path, value, { min, max, integer: true });
  return {
    stream: `${prefix}:ob:{${name}}:s`,
    attempts: `${prefix}:ob:{${name}}:a`,
    keyPrefix: `${prefix}:ob:{${name}}:k:`,
    send: o.send as RedisOutboxOptions<T, R>['send'],
    breaker: b,
    policy: p ?? b ?? direct,
    orderKey: v.optionalFunction<(data: T) => string | undefined>('orderKey', o.orderKey),
    claimMs: int('claimTimeoutMs', o.claimTimeoutMs, 100, 86_400_000) ?? 30_000,
    pollMs: int('pollIntervalMs', o.pollIntervalMs, 10, 3_600_000) ?? 1_000,
    batch: int('batch', o.batch, 1, 1_000) ?? 10,
    maxAttempts: v.optionalNumber('maxAttempts', o.maxAttempts, { min: 1, integer: true }) ?? Infinity,
    retryable: v.optionalFunction<(e: unknown) => boolean>('retryable', o.retryable) ?? (() => true),
    backoff: backoff ?? decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 }),
    random: v.optionalFunction<() => number>('random', o.random) ?? Math.random,
    clock: v.clock('clock', o.clock) ?? systemClock,
    consumer,
    commandTimeoutMs: int('commandTimeoutMs', o.commandTimeoutMs, 1, 60_000) ?? 2_000,
    url: (o.url as string | undefined) ?? 'redis://127.0.0.1:6379',
    client: o.client as Redis | Cluster | undefined,
  };
}
