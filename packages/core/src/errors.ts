/**
 * Errors thrown by tripswitch policies.
 *
 * Every error has a `name`, a stable `code`, and a guard (`isCircuitOpenError`, ...) that checks
 * the `code` rather than `instanceof`, so it still answers correctly when two copies of the
 * package end up in one process (a dependency pinned to another version, a bundled copy).
 *
 * @module
 */

/**
 * The stable codes carried by tripswitch errors.
 *
 * @example
 * ```ts
 * if ((err as { code?: string }).code === ErrorCodes.circuitOpen) res.statusCode = 503;
 * ```
 */
export const ErrorCodes = {
  circuitOpen: 'ERR_CIRCUIT_OPEN',
  timeout: 'ERR_TIMEOUT',
  bulkheadFull: 'ERR_BULKHEAD_FULL',
  rateLimited: 'ERR_RATE_LIMITED',
  invalidOption: 'ERR_INVALID_OPTION',
  writeQueueFull: 'ERR_WRITE_QUEUE_FULL',
  writeQueueClosed: 'ERR_WRITE_QUEUE_CLOSED',
} as const;

function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/**
 * Base class of every tripswitch error: a `name` and a stable `code`. Within one copy of the
 * package `instanceof` works; across copies use the `isXxxError()` guards.
 *
 * @example
 * ```ts
 * if (err instanceof TripswitchError) log.warn({ code: err.code }, err.message);
 * ```
 */
export abstract class TripswitchError extends Error {
  abstract readonly code: string;
}

/**
 * What a breaker reports about itself when it rejects a call.
 *
 * @example
 * ```ts
 * const details: CircuitOpenDetails = { breakerName: 'payments', state: 'open', retryAt, retryAfter: 8_000 };
 * throw new CircuitOpenError(details);
 * ```
 */
export interface CircuitOpenDetails {
  /** The breaker's name. */
  breakerName: string;
  /** The state that caused the rejection: `open`, `half-open` (no probe slot) or `isolated`. */
  state: string;
  /** Epoch ms when a probe will next be admitted; `undefined` when isolated (no automatic end). */
  retryAt: number | undefined;
  /** Milliseconds from now until `retryAt`; `undefined` when isolated. */
  retryAfter: number | undefined;
  /** Failures counted in the window that opened the breaker. */
  failures?: number;
  /** The failure that opened the breaker, if any. */
  lastFailure?: unknown;
}

function describeFailure(f: unknown): string {
  if (f instanceof Error) return `${f.name}: ${f.message}`;
  if (f === undefined) return '';
  try {
    return String(f);
  } catch {
    return 'unprintable value';
  }
}

/**
 * Thrown (or rejected) without calling the function when a breaker does not admit the call.
 *
 * The message is built only when read, so a rejection costs an object allocation, not string
 * formatting. It reads like:
 * `Circuit "payments" OPEN until 2026-11-22T10:00:08.000Z (5 failures, 8 s remaining) (last failure: Error: boom)`.
 *
 * @example
 * ```ts
 * try {
 *   await breaker.execute(() => charge(order));
 * } catch (err) {
 *   if (isCircuitOpenError(err)) res.setHeader('retry-after', Math.ceil((err.retryAfter ?? 0) / 1000));
 *   throw err;
 * }
 * ```
 */
export class CircuitOpenError extends TripswitchError {
  // Fields are declared, not initialised, and `name`/`code` live on the prototype (set below): a
  // class field is a define-own-property per instance, and rejections are made on the hot path.
  declare readonly name: 'CircuitOpenError';
  declare readonly code: typeof ErrorCodes.circuitOpen;
  /** The breaker's name. */
  declare readonly breakerName: string;
  /** `open`, `half-open` or `isolated`. */
  declare readonly state: string;
  /** Epoch ms when a probe will next be admitted; `undefined` when isolated. */
  declare readonly retryAt: number | undefined;
  /** Milliseconds until `retryAt` when the error was made. */
  declare readonly retryAfter: number | undefined;
  /** Failures counted when the breaker opened. */
  declare readonly failures: number | undefined;
  /** @internal The formatted message, built on first read of `message`. */
  declare _message: string | undefined;

  constructor(details: CircuitOpenDetails) {
    // No message argument: Error then defines no own `message`, and the lazy getter installed on
    // the prototype below answers instead. Formatting a date and a sentence per rejection would
    // cost more than the rest of the rejection together.
    super();
    // Assigned rather than passed as `{ cause }`: the options bag costs a third of the construction.
    // (So `cause` is an enumerable own property here, unlike on errors made with the option.)
    if (details.lastFailure !== undefined) this.cause = details.lastFailure;
    this.breakerName = details.breakerName;
    this.state = details.state;
    this.retryAt = details.retryAt;
    this.retryAfter = details.retryAfter;
    this.failures = details.failures;
  }

  /**
   * Builds the error for the hot path (a breaker rejecting thousands of calls a second).
   *
   * It skips the `Error` constructor, whose stack machinery costs more than the rest of a
   * rejection together even with no frames captured: the object is made by a plain constructor
   * sharing this class's prototype. So it is `instanceof CircuitOpenError` and `instanceof Error`,
   * has `name`, `code`, `message` (formatted on first read), `cause` and a frame-less `stack`
   * (`"CircuitOpenError: <message>"`); `util.types.isNativeError()` and `Object.prototype.toString`
   * (`[object Object]`) tell it apart. `new CircuitOpenError(...)` makes a native one.
   */
  static fast(details: CircuitOpenDetails): CircuitOpenError {
    return new (FastCircuitOpenError as unknown as new (d: CircuitOpenDetails) => CircuitOpenError)(details);
  }

  /** @internal */
  _format(): string {
    const parts: string[] = [];
    if (this.failures !== undefined) parts.push(`${this.failures} failure${this.failures === 1 ? '' : 's'}`);
    if (this.retryAfter !== undefined)
      parts.push(`${Math.max(0, Math.ceil(this.retryAfter / 1000))} s remaining`);
    const until =
      this.retryAt === undefined
        ? this.state === 'isolated'
          ? ' (isolated by an operator)'
          : ''
        : ` until ${new Date(this.retryAt).toISOString()}`;
    const detail = parts.length ? ` (${parts.join(', ')})` : '';
    const cause = this.cause === undefined ? '' : ` (last failure: ${describeFailure(this.cause)})`;
    return `Circuit "${this.breakerName}" ${this.state.toUpperCase()}${until}${detail}${cause}`;
  }
}

/** Non-enumerable, so `JSON.stringify(err)` and `util.inspect(err)` do not show it twice. */
function cacheMessage(e: CircuitOpenError, m: string): void {
  Object.defineProperty(e, '_message', { value: m, writable: true, configurable: true, enumerable: false });
}

/** Makes {@link CircuitOpenError.fast} errors: same prototype, no `Error` constructor. */
function FastCircuitOpenError(this: Record<string, unknown>, details: CircuitOpenDetails): void {
  this.breakerName = details.breakerName;
  this.state = details.state;
  this.retryAt = details.retryAt;
  this.retryAfter = details.retryAfter;
  this.failures = details.failures;
  if (details.lastFailure !== undefined) this.cause = details.lastFailure;
}
FastCircuitOpenError.prototype = CircuitOpenError.prototype;

// Native errors have an own `stack`; fast ones read this frame-less one (assignable, as on errors).
Object.defineProperty(CircuitOpenError.prototype, 'stack', {
  configurable: true,
  enumerable: false,
  get(this: CircuitOpenError): string {
    return `${this.name}: ${this.message}`;
  },
  set(this: CircuitOpenError, value: unknown) {
    Object.defineProperty(this, 'stack', { value, writable: true, configurable: true, enumerable: false });
  },
});
Object.defineProperty(CircuitOpenError.prototype, 'name', {
  configurable: true,
  writable: true,
  enumerable: false,
  value: 'CircuitOpenError',
});
Object.defineProperty(CircuitOpenError.prototype, 'code', {
  configurable: true,
  writable: true,
  enumerable: false,
  value: ErrorCodes.circuitOpen,
});
Object.defineProperty(CircuitOpenError.prototype, 'message', {
  configurable: true,
  enumerable: false,
  get(this: CircuitOpenError): string {
    if (this._message === undefined) cacheMessage(this, this._format());
    return this._message!;
  },
  set(this: CircuitOpenError, value: string) {
    cacheMessage(this, String(value));
  },
});

/**
 * True when `err` is a {@link CircuitOpenError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isCircuitOpenError(err)) return cachedAnswer;
 * ```
 */
export function isCircuitOpenError(err: unknown): err is CircuitOpenError {
  return hasCode(err, ErrorCodes.circuitOpen);
}

/**
 * A call did not finish before its deadline.
 *
 * @example
 * ```ts
 * if (isTimeoutError(err)) console.warn(`gave up after ${err.timeoutMs} ms`);
 * ```
 */
export class TimeoutError extends TripswitchError {
  override readonly name = 'TimeoutError';
  readonly code = ErrorCodes.timeout;
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, message = `Operation timed out after ${timeoutMs} ms`) {
    super(message);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * True when `err` is a {@link TimeoutError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * const isFailure = (err: unknown) => isTimeoutError(err) || isServerError(err);
 * ```
 */
export function isTimeoutError(err: unknown): err is TimeoutError {
  return hasCode(err, ErrorCodes.timeout);
}

/**
 * A bulkhead had no free slot and no room in its queue (or the queue wait ran out).
 *
 * @example
 * ```ts
 * if (isBulkheadRejectedError(err)) res.statusCode = 503;
 * ```
 */
export class BulkheadRejectedError extends TripswitchError {
  override readonly name = 'BulkheadRejectedError';
  readonly code = ErrorCodes.bulkheadFull;
  /** The bulkhead's concurrency limit. */
  readonly maxConcurrent: number;
  /** The bulkhead's queue limit. */
  readonly maxQueue: number;
  /** `'full'` when rejected at once, `'queue-timeout'` when the queue wait expired. */
  readonly reason: 'full' | 'queue-timeout';
  constructor(maxConcurrent: number, maxQueue: number, reason: 'full' | 'queue-timeout' = 'full') {
    super(
      reason === 'full'
        ? `Bulkhead full: ${maxConcurrent} running and ${maxQueue} queued`
        : `Bulkhead queue wait expired (limit ${maxConcurrent} running, ${maxQueue} queued)`,
    );
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
    this.reason = reason;
  }
}

/**
 * True when `err` is a {@link BulkheadRejectedError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isBulkheadRejectedError(err)) metrics.shed.inc();
 * ```
 */
export function isBulkheadRejectedError(err: unknown): err is BulkheadRejectedError {
  return hasCode(err, ErrorCodes.bulkheadFull);
}

/**
 * A rate limiter had no token for the call.
 *
 * @example
 * ```ts
 * if (isRateLimitedError(err)) await sleep(err.retryAfter);
 * ```
 */
export class RateLimitedError extends TripswitchError {
  override readonly name = 'RateLimitedError';
  readonly code = ErrorCodes.rateLimited;
  /** Milliseconds until a token will be available. */
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super(`Rate limit reached; next token in ${Math.ceil(retryAfter)} ms`);
    this.retryAfter = retryAfter;
  }
}

/**
 * True when `err` is a {@link RateLimitedError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isRateLimitedError(err)) res.statusCode = 429;
 * ```
 */
export function isRateLimitedError(err: unknown): err is RateLimitedError {
  return hasCode(err, ErrorCodes.rateLimited);
}

/**
 * An option given to a tripswitch factory is out of range or of the wrong type.
 * The message names the option, what is allowed, and what was given.
 *
 * @example
 * ```ts
 * circuitBreaker({ openDuration: -1 });
 * // InvalidOptionError: circuitBreaker: option "openDuration" must be a number >= 0, got -1
 * ```
 */
export class InvalidOptionError extends TripswitchError {
  override readonly name = 'InvalidOptionError';
  readonly code = ErrorCodes.invalidOption;
  /** The option's path, for example `trip.threshold`. */
  readonly option: string;
  constructor(owner: string, option: string, expected: string, got: unknown) {
    super(`${owner}: option "${option}" must be ${expected}, got ${showValue(got)}`);
    this.option = option;
  }
}

/**
 * True when `err` is an {@link InvalidOptionError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isInvalidOptionError(err)) console.error(err.option);
 * ```
 */
export function isInvalidOptionError(err: unknown): err is InvalidOptionError {
  return hasCode(err, ErrorCodes.invalidOption);
}

/**
 * A write queue already holds `maxItems` writes; the write was not accepted. `cause` is the
 * error that made the write go to the queue, when there was one.
 *
 * @example
 * ```ts
 * if (isWriteQueueFullError(err)) res.statusCode = 503; // nothing was stored: tell the caller
 * ```
 */
export class WriteQueueFullError extends TripswitchError {
  override readonly name = 'WriteQueueFullError';
  readonly code = ErrorCodes.writeQueueFull;
  /** The queue's limit. */
  readonly maxItems: number;
  constructor(maxItems: number, cause?: unknown) {
    super(`Write queue full: ${maxItems} writes waiting for replay; this write was not stored`, { cause });
    this.maxItems = maxItems;
  }
}

/**
 * True when `err` is a {@link WriteQueueFullError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isWriteQueueFullError(err)) metrics.lostWrites.inc();
 * ```
 */
export function isWriteQueueFullError(err: unknown): err is WriteQueueFullError {
  return hasCode(err, ErrorCodes.writeQueueFull);
}

/**
 * The write queue was closed; it takes no more writes.
 *
 * @example
 * ```ts
 * await outbox.close();
 * await outbox.submit(order); // rejects with WriteQueueClosedError
 * ```
 */
export class WriteQueueClosedError extends TripswitchError {
  override readonly name = 'WriteQueueClosedError';
  readonly code = ErrorCodes.writeQueueClosed;
  constructor() {
    super('Write queue closed: the write was not stored');
  }
}

/**
 * True when `err` is a {@link WriteQueueClosedError} from any copy of tripswitch.
 *
 * @example
 * ```ts
 * if (isWriteQueueClosedError(err)) return; // shutting down
 * ```
 */
export function isWriteQueueClosedError(err: unknown): err is WriteQueueClosedError {
  return hasCode(err, ErrorCodes.writeQueueClosed);
}

/**
 * Renders a value for an error message: strings quoted, classes and functions named, arrays and
 * plain objects element by element (JSON would print a class in an array as `null` and drop an
 * object's function-valued keys), nesting and length cut short.
 */
export function showValue(v: unknown): string {
  const s = show(v, 0, []);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

const MAX_DEPTH = 3;

function show(v: unknown, depth: number, seen: object[]): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'function') return isClass(v) ? `class ${v.name}` : 'a function';
  if (v === null || typeof v !== 'object') return String(v);
  if (seen.includes(v)) return '[circular]';
  const proto = Object.getPrototypeOf(v) as object | null;
  const array = Array.isArray(v);
  if (!array && proto !== Object.prototype && proto !== null) {
    const name = (v as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' && name !== '' ? `a ${name}` : Object.prototype.toString.call(v);
  }
  if (depth >= MAX_DEPTH) return array ? '[...]' : '{...}';
  seen.push(v);
  // Only as many entries as the 80-character message can show.
  const parts: string[] = [];
  if (array) for (let i = 0; i < v.length && i < 40; i++) parts.push(show(v[i], depth + 1, seen));
  else
    for (const k of Object.keys(v).slice(0, 40))
      parts.push(`${k}: ${show((v as Record<string, unknown>)[k], depth + 1, seen)}`);
  seen.pop();
  return array ? `[${parts.join(', ')}]` : `{${parts.join(', ')}}`;
}

// A constructor someone would pass as an error class: `class` syntax, or a named function with a
// prototype and a capitalised name (built-ins such as TypeError).
function isClass(f: Function): boolean {
  const src = Function.prototype.toString.call(f);
  return src.startsWith('class') || (f.prototype !== undefined && /^[A-Z]/.test(f.name));
}
