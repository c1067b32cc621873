/**
 * A registry of breakers: one per downstream service, host or key, created on first use.
 *
 * Eviction is lazy: `get` and `list` drop breakers not asked for during `idleEvictMs`, and `get`
 * drops the least recently used idle breaker when `maxSize` is reached. Only idle breakers (closed,
 * nothing in flight) are dropped, so a breaker that is protecting a failing host is never
 * forgotten; the registry holds no timer.
 *
 * @module
 */
import {
  type BreakerStats,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitState,
  circuitBreaker,
  isIdleBreaker,
} from './breaker.js';
import { type Clock, systemClock } from './clock.js';
import { Emitter, type Subscription } from './emitter.js';
import { rejectUnknownKeys, validator } from './validate.js';

/**
 * Options of {@link breakerRegistry}.
 *
 * @example
 * ```ts
 * breakerRegistry({ defaults: { openDuration: 10_000 }, maxSize: 500, idleEvictMs: 600_000 });
 * ```
 */
export interface BreakerRegistryOptions {
  /** Options every breaker starts from. @default {} */
  defaults?: Omit<CircuitBreakerOptions, 'name' | 'initialState'>;
  /** Per-name options, merged over `defaults` (`halfOpen` merged key by key). @default {} */
  overrides?: Record<string, Omit<CircuitBreakerOptions, 'name'>>;
  /** Most breakers kept; the least recently used idle one is dropped to make room. @default Infinity */
  maxSize?: number;
  /** Drop idle breakers not asked for during this many ms. @default Infinity (never) */
  idleEvictMs?: number;
  /** Clock for idle eviction; also the default `clock` of breakers. @default systemClock */
  clock?: Clock;
}

/**
 * One line of {@link BreakerRegistry.list}.
 *
 * @example
 * ```ts
 * for (const { name, state, stats } of registry.list()) console.log(name, state, stats.failureRate);
 * ```
 */
export interface BreakerListing {
  name: string;
  state: CircuitState;
  stats: BreakerStats;
}

/**
 * Registry events.
 *
 * @example
 * ```ts
 * registry.on('added', ({ name, breaker }) => breaker.on('stateChange', (e) => metrics.state(name, e.to)));
 * ```
 */
export interface BreakerRegistryEvents {
  added: { name: string; breaker: CircuitBreaker };
  removed: { name: string; breaker: CircuitBreaker; reason: 'deleted' | 'evicted' | 'idle' };
}

/**
 * See {@link breakerRegistry}.
 *
 * @example
 * ```ts
 * const b = registry.get(new URL(url).host);
 * ```
 */
export interface BreakerRegistry extends Iterable<CircuitBreaker> {
  /**
   * The breaker called `name`, created on first use from defaults, the override for `name` and
   * `options` (used only when the breaker is created).
   */
  get(name: string, options?: Omit<CircuitBreakerOptions, 'name'>): CircuitBreaker;
  has(name: string): boolean;
  /** Drops a breaker (disposing it). Returns whether it existed. */
  delete(name: string): boolean;
  /** Every breaker with its state and counts. */
  list(): BreakerListing[];
  readonly size: number;
  on<K extends keyof BreakerRegistryEvents>(
    event: K,
    listener: (e: BreakerRegistryEvents[K]) => void,
  ): Subscription;
}

interface Entry {
  breaker: CircuitBreaker;
  lastUsed: number;
}

const OWNER = 'breakerRegistry';

class Registry implements BreakerRegistry {
  readonly #defaults: Record<string, unknown>;
  readonly #overrides: Record<string, Record<string, unknown>>;
  readonly #maxSize: number;
  readonly #idleMs: number;
  readonly #clock: Clock;
  readonly #unbounded: boolean;
  // Map order is use order (a used entry is moved to the end), so the front is least recently used.
  readonly #map = new Map<string, Entry>();
  readonly #events = new Emitter<BreakerRegistryEvents>();

  constructor(options: BreakerRegistryOptions | undefined) {
    const v = validator(OWNER);
    const o = (options === undefined ? {} : v.object('options', options)) as Record<string, unknown>;
    rejectUnknownKeys(OWNER, o, ['defaults', 'overrides', 'maxSize', 'idleEvictMs', 'clock']);
    this.#defaults = v.optionalObject('defaults', o.defaults) ?? {};
    if ('name' in this.#defaults)
      v.fail('defaults.name', 'absent (names come from get())', this.#defaults.name);
    const overrides = v.optionalObject('overrides', o.overrides) ?? {};
    for (const k of Object.keys(overrides)) v.object(`overrides.${k}`, overrides[k]);
    this.#overrides = overrides as Record<string, Record<string, unknown>>;
    this.#maxSize =
      v.optionalNumber('maxSize', o.maxSize, { min: 1, integer: true }) ?? Number.POSITIVE_INFINITY;
    this.#idleMs = v.optionalNumber('idleEvictMs', o.idleEvictMs, { min: 1 }) ?? Number.POSITIVE_INFINITY;
    this.#clock = v.clock('clock', o.clock) ?? systemClock;
    this.#unbounded = this.#maxSize === Number.POSITIVE_INFINITY && this.#idleMs === Number.POSITIVE_INFINITY;
    // Build one breaker from the defaults now, so bad defaults fail here rather than on first use.
    // (without the store: attaching a throwaway breaker to shared state would be a side effect).
    circuitBreaker({ ...this.#merge('registry-defaults-check', undefined), store: undefined }).dispose();
  }

  get size(): number {
    return this.#map.size;
  }

  #merge(name: string, options: Record<string, unknown> | undefined): CircuitBreakerOptions {
    const over = Object.hasOwn(this.#overrides, name) ? this.#overrides[name] : undefined;
    const merged: Record<string, unknown> = {
      clock: this.#clock,
      ...this.#defaults,
      ...over,
      ...options,
      name,
    };
    const halfOpen = [this.#defaults.halfOpen, over?.halfOpen, options?.halfOpen].filter(
      (h) => h !== undefined,
    );
    if (halfOpen.length > 1) merged.halfOpen = Object.assign({}, ...halfOpen);
    return merged as CircuitBreakerOptions;
  }

  get(name: string, options?: Omit<CircuitBreakerOptions, 'name'>): CircuitBreaker {
    if (typeof name !== 'string' || name.length === 0)
      validator(OWNER).fail('get(name)', 'a non-empty string', name);
    if (this.#unbounded) {
      // No eviction configured: no use order or time to keep, so a hit is one map lookup.
      const hit = this.#map.get(name);
      if (hit !== undefined) return hit.breaker;
    }
    const now = this.#clock.now();
    this.#evictIdle(now);
    const hit = this.#map.get(name);
    if (hit !== undefined) {
      hit.lastUsed = now;
      this.#map.delete(name);
      this.#map.set(name, hit);
      return hit.breaker;
    }
    const breaker = circuitBreaker(this.#merge(name, options as Record<string, unknown> | undefined));
    if (this.#map.size >= this.#maxSize) this.#evictOne();
    this.#map.set(name, { breaker, lastUsed: now });
    if (this.#events.has('added')) this.#events.emit('added', { name, breaker });
    return breaker;
  }

  has(name: string): boolean {
    return this.#map.has(name);
  }

  delete(name: string): boolean {
    return this.#remove(name, 'deleted');
  }

  list(): BreakerListing[] {
    this.#evictIdle(this.#clock.now());
    const out: BreakerListing[] = [];
    for (const [name, { breaker }] of this.#map)
      out.push({ name, state: breaker.state, stats: breaker.stats() });
    return out;
  }

  *[Symbol.iterator](): Iterator<CircuitBreaker> {
    for (const e of [...this.#map.values()]) yield e.breaker;
  }

  on<K extends keyof BreakerRegistryEvents>(
    event: K,
    listener: (e: BreakerRegistryEvents[K]) => void,
  ): Subscription {
    return this.#events.on(event, listener);
  }

  #remove(name: string, reason: 'deleted' | 'evicted' | 'idle'): boolean {
    const e = this.#map.get(name);
    if (e === undefined) return false;
    this.#map.delete(name);
    e.breaker.dispose();
    if (this.#events.has('removed')) this.#events.emit('removed', { name, breaker: e.breaker, reason });
    return true;
  }

  /** Drops breakers unused for `idleEvictMs`; the walk stops at the first recently used one. */
  #evictIdle(now: number): void {
    if (this.#idleMs === Number.POSITIVE_INFINITY) return;
    const limit = now - this.#idleMs;
    let drop: string[] | undefined;
    for (const [name, e] of this.#map) {
      if (e.lastUsed > limit) break;
      if (!isIdleBreaker(e.breaker)) continue;
      if (drop === undefined) drop = [name];
      else drop.push(name);
    }
    if (drop !== undefined) for (const name of drop) this.#remove(name, 'idle');
  }

  /** Drops the least recently used idle breaker; if none is idle the registry grows past maxSize. */
  #evictOne(): void {
    for (const [name, e] of this.#map) {
      if (isIdleBreaker(e.breaker)) {
        this.#remove(name, 'evicted');
        return;
      }
    }
  }
}

/**
 * Creates a breaker registry.
 *
 * @example
 * ```ts
 * const breakers = breakerRegistry({
 *   defaults: { trip: { kind: 'count', windowSize: 50, minimumCalls: 10 } },
 *   overrides: { payments: { openDuration: 60_000 } },
 *   maxSize: 1_000,
 *   idleEvictMs: 10 * 60_000,
 * });
 * const b = breakers.get(new URL(url).host);
 * await b.execute(() => fetch(url));
 * ```
 */
export function breakerRegistry(options?: BreakerRegistryOptions): BreakerRegistry {
  return new Registry(options);
}
