/// <reference lib="esnext.disposable" preserve="true" />
// Our .d.ts use Symbol.dispose / Disposable: this brings their lib to consumers compiling without it.
import type { CircuitBreaker } from './breaker.js';
import type { BreakerRegistry } from './registry.js';

/**
 * A logger that pino and console both satisfy: structured object first.
 *
 * @example
 * ```ts
 * const logger: StateChangeLogger = pino(); // or console
 * logStateChanges(registry, logger);
 * ```
 */
export interface StateChangeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/**
 * Logs each breaker state transition once, as a structured record (warn when opening).
 * Follows breakers added to a registry later. Returns a disposable that detaches everything.
 *
 * @example
 * const sub = logStateChanges(registry, console);
 * sub.dispose();
 */
export function logStateChanges(
  target: CircuitBreaker | BreakerRegistry,
  logger: StateChangeLogger,
): { dispose(): void; [Symbol.dispose](): void } {
  const subs = new Map<CircuitBreaker, { dispose(): void }>();
  const follow = (b: CircuitBreaker): void => {
    if (subs.has(b)) return;
    subs.set(
      b,
      b.on('stateChange', (e) => {
        const rec = { breaker: e.name, from: e.from, to: e.to, reason: e.reason, at: e.at };
        const msg = `circuit breaker ${e.name}: ${e.from} -> ${e.to} (${e.reason})`;
        if (e.to === 'open' || e.to === 'isolated') logger.warn(rec, msg);
        else logger.info(rec, msg);
      }),
    );
  };
  const extra: { dispose(): void }[] = [];
  if ('execute' in target) follow(target);
  else {
    for (const b of target) follow(b);
    extra.push(target.on('added', (e) => follow(e.breaker)));
    extra.push(
      target.on('removed', (e) => {
        subs.get(e.breaker)?.dispose();
        subs.delete(e.breaker);
      }),
    );
  }
  const dispose = (): void => {
    for (const s of subs.values()) s.dispose();
    for (const s of extra) s.dispose();
    subs.clear();
    extra.length = 0;
  };
  return { dispose, [Symbol.dispose]: dispose };
}
