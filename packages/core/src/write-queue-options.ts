/**
 * The options of {@link writeQueue} and their validation.
 *
 * @module
 */
import { type Backoff, decorrelatedJitterBackoff } from './backoff.js';
import type { CircuitBreaker } from './breaker.js';
import { type Clock, systemClock } from './clock.js';
import { neverAbortedSignal, type Policy, type PolicyContext } from './policy.js';
import { rejectUnknownKeys, validator } from './validate.js';
import type { writeQueue } from './write-queue.js';
import type { WriteContext, WriteQueueStore } from './write-queue-api.js';
import type { memoryWriteStore } from './write-queue-memory-store.js';

/**
 * Options of {@link writeQueue}.
 *
 * @example
 * ```ts
 * writeQueue({ send: postOrder, store: fileWriteStore('outbox.jsonl'), breaker: orders });
 * ```
 */
export interface WriteQueueOptions<T, R> {
  /** Performs one write. Runs under `policy` for first attempts and replays alike. */
  send: (data: T, ctx: WriteContext) => PromiseLike<R> | R;
  /**
   * Where queued writes live. Required, so durability is a choice made in the code:
   * `fileWriteStore` (`tripswitch/file-store`) survives restarts, {@link memoryWriteStore} does not.
   */
  store: WriteQueueStore<T>;
  /**
   * The downstream's breaker. Replays start when it closes and are not attempted while it is
   * open (the first replay after its open period is its probe). Also the default `policy`.
   */
  breaker?: CircuitBreaker;
  /**
   * Runs every send (for example `wrap(breaker, timeout({ ms: 2_000 }))`).
   * @default the breaker, or no policy
   */
  policy?: Policy<PolicyContext>;
  /** Writes held at most; a write beyond it is refused with `WriteQueueFullError`. @default 10_000 */
  maxItems?: number;
  /**
   * Sends per write (first attempt included) before it is dropped with a `dead` event. Rejections
   * by an open breaker do not count.
   * @default Infinity (a write is never dropped on its own; see `discard()`)
   */
  maxAttempts?: number;
  /**
   * Which errors mean "try again later". A failed first attempt is queued only if this says so
   * (otherwise `submit()` rethrows it); a replay failing with an error this rejects is dropped
   * with a `dead` event at once. Example: `(err) => !(err instanceof HttpError && err.status < 500)`.
   * @default every error
   */
  retryable?: (error: unknown) => boolean;
  /**
   * Keep submission order, always: writes reach the downstream in the order `submit()` and
   * `enqueue()` were called. A write submitted while an earlier write's first attempt is in flight
   * waits for that attempt (then goes at once if it succeeded, or behind it in the queue if it
   * failed), and while writes wait in the queue new ones go behind them. So first attempts go one
   * at a time. Turn off when writes are independent and latency matters more: each write is then
   * sent at once, whatever is in flight or queued.
   * @default true
   */
  ordered?: boolean;
  /**
   * The wait after a failed replay (not after a breaker rejection: the breaker says when to come back).
   * @default decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 })
   */
  backoff?: Backoff;
  /** @default Math.random */
  random?: () => number;
  /** @default systemClock */
  clock?: Clock;
}

/** The name in the queue's validation errors. */
export const OWNER = 'writeQueue';
const KEYS = [
  'send',
  'store',
  'breaker',
  'policy',
  'maxItems',
  'maxAttempts',
  'retryable',
  'ordered',
  'backoff',
  'random',
  'clock',
] as const;

const direct: Policy<PolicyContext> = {
  execute: <T>(fn: (ctx: PolicyContext) => PromiseLike<T> | T, signal?: AbortSignal) =>
    new Promise<T>((resolve) => resolve(fn({ signal: signal ?? neverAbortedSignal }))),
};

const always = () => true;

/** The options of {@link writeQueue} validated, with their defaults. */
export interface WriteQueueSettings<T, R> {
  readonly send: WriteQueueOptions<T, R>['send'];
  readonly store: WriteQueueStore<T>;
  readonly breaker: CircuitBreaker | undefined;
  readonly policy: Policy<PolicyContext>;
  readonly maxItems: number;
  readonly maxAttempts: number;
  readonly retryable: (error: unknown) => boolean;
  readonly ordered: boolean;
  readonly backoff: Backoff;
  readonly random: () => number;
  readonly clock: Clock;
}

/** Validates the options of {@link writeQueue} (throwing on the first wrong one) and fills in defaults. */
export function writeQueueSettings<T, R>(options: WriteQueueOptions<T, R>): WriteQueueSettings<T, R> {
  const v = validator(OWNER);
  const o = v.object('options', options);
  rejectUnknownKeys(OWNER, o, KEYS);
  if (typeof o.send !== 'function') v.fail('send', 'a function (data, ctx) => result', o.send);
  const send = o.send as WriteQueueOptions<T, R>['send'];
  const store = o.store as Partial<WriteQueueStore<T>> | undefined;
  if (
    typeof store !== 'object' ||
    store === null ||
    typeof store.load !== 'function' ||
    typeof store.append !== 'function' ||
    typeof store.remove !== 'function' ||
    typeof store.close !== 'function'
  )
    v.fail(
      'store',
      'a WriteQueueStore (fileWriteStore(path) to survive restarts, memoryWriteStore() for tests)',
      o.store,
    );
  const b = o.breaker as CircuitBreaker | undefined;
  if (b !== undefined && (typeof b !== 'object' || b === null || b.kind !== 'breaker'))
    v.fail('breaker', 'a circuit breaker made by circuitBreaker()', b);
  const p = o.policy as Policy<PolicyContext> | undefined;
  if (p !== undefined && (typeof p !== 'object' || p === null || typeof p.execute !== 'function'))
    v.fail('policy', 'a policy with execute(fn, signal)', p);
  const maxItems = v.optionalNumber('maxItems', o.maxItems, { min: 1, integer: true }) ?? 10_000;
  const maxAttempts = v.optionalNumber('maxAttempts', o.maxAttempts, { min: 1, integer: true }) ?? Infinity;
  const retryable = v.optionalFunction<(e: unknown) => boolean>('retryable', o.retryable) ?? always;
  const ordered = v.optionalBoolean('ordered', o.ordered) ?? true;
  const backoff = o.backoff as Backoff | undefined;
  if (backoff !== undefined && (typeof backoff !== 'object' || typeof backoff?.delay !== 'function'))
    v.fail('backoff', 'a Backoff with delay(retry, previous, random)', backoff);
  const random = v.optionalFunction<() => number>('random', o.random) ?? Math.random;
  const clock = v.clock('clock', o.clock) ?? systemClock;
  return {
    send,
    store: store as WriteQueueStore<T>,
    breaker: b,
    policy: p ?? b ?? direct,
    maxItems,
    maxAttempts,
    retryable,
    ordered,
    backoff: backoff ?? decorrelatedJitterBackoff({ initialDelay: 1_000, maxDelay: 300_000 }),
    random,
    clock,
  };
}
