/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
/**
 * A tiny typed event emitter with disposable subscriptions. Internal building block of every
 * policy's `on()`.
 *
 * Emitting with no listener costs one length check, so policies can emit on every call.
 * Listener errors are reported through `queueMicrotask` rethrow rather than breaking the call
 * that emitted them: an observer must never change the outcome of the observed call.
 *
 * @module
 */

/**
 * A subscription; `dispose()` (or `using`) removes the listener. Disposing twice is a no-op.
 *
 * @example
 * ```ts
 * const sub: Subscription = breaker.on('stateChange', (e) => log.info(e));
 * sub.dispose(); // or: using sub = breaker.on(...)
 * ```
 */
export interface Subscription extends Disposable {
  dispose(): void;
}

/**
 * Holds listeners per event name.
 *
 * @example
 * ```ts
 * const events = new Emitter<{ tick: { n: number } }>();
 * using sub = events.on('tick', (e) => console.log(e.n));
 * events.emit('tick', { n: 1 });
 * ```
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  #listeners: { [K in keyof Events]?: Array<(e: Events[K]) => void> } = {};

  /** Adds a listener; returns a {@link Subscription}. */
  on<K extends keyof Events>(event: K, listener: (e: Events[K]) => void): Subscription {
    if (typeof listener !== 'function')
      throw new TypeError(`on("${String(event)}"): listener must be a function`);
    // Copy-on-write: emit iterates a stable array even if a listener unsubscribes mid-emit.
    const list = [...(this.#listeners[event] ?? []), listener];
    this.#listeners[event] = list;
    let done = false;
    const dispose = () => {
      if (done) return;
      done = true;
      const cur = this.#listeners[event];
      if (!cur) return;
      const i = cur.indexOf(listener);
      if (i < 0) return;
      const next = cur.slice();
      next.splice(i, 1);
      if (next.length) this.#listeners[event] = next;
      else delete this.#listeners[event];
    };
    return { dispose, [Symbol.dispose]: dispose };
  }

  /** True when `event` has at least one listener (lets callers skip building a payload). */
  has<K extends keyof Events>(event: K): boolean {
    return this.#listeners[event] !== undefined;
  }

  /** Number of listeners for `event`. */
  count<K extends keyof Events>(event: K): number {
    return this.#listeners[event]?.length ?? 0;
  }

  /** Calls each listener of `event` with `payload`. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners[event];
    if (list === undefined) return;
    for (let i = 0; i < list.length; i++) {
      try {
        list[i]!(payload);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
