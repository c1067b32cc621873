/**
 * A standard (TC39, TypeScript 5 `experimentalDecorators: false`) method decorator that runs a
 * class method through a policy.
 *
 * @module
 */
import type { Policy } from './policy.js';

/**
 * The decorator returned by {@link withBreaker} (and by `breaker.protect`).
 *
 * @example
 * ```ts
 * class Api { @breaker.protect async get(): Promise<string> { return 'x'; } }
 * ```
 */
export type MethodDecorator = <This, Args extends unknown[], T>(
  target: (this: This, ...args: Args) => Promise<T>,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => Promise<T>>,
) => (this: This, ...args: Args) => Promise<T>;

/**
 * Returns a method decorator that runs every call of the method through `policy.execute` (a
 * breaker, or any policy). Only async methods (returning a promise) can be decorated. When the
 * method's last argument is an `AbortSignal`, it is passed to the policy as the call's signal.
 *
 * @example
 * ```ts
 * const payments = circuitBreaker({ name: 'payments' });
 *
 * class PaymentClient {
 *   @withBreaker(payments)
 *   async charge(orderId: string, signal?: AbortSignal): Promise<Receipt> {
 *     return post('/charge', { orderId }, signal);
 *   }
 * }
 * ```
 */
export function withBreaker(policy: Pick<Policy, 'execute'>): MethodDecorator {
  if (typeof policy !== 'object' || policy === null || typeof policy.execute !== 'function')
    throw new TypeError('withBreaker: expected a breaker (or another policy with execute())');
  return <This, Args extends unknown[], T>(
    target: (this: This, ...args: Args) => Promise<T>,
    context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => Promise<T>>,
  ) => {
    if (context?.kind !== 'method')
      throw new TypeError(
        `withBreaker: can only decorate methods, not ${context?.kind ?? 'this target'} (are experimentalDecorators on?)`,
      );
    const name = String(context.name);
    const decorated = function (this: This, ...args: Args): Promise<T> {
      const last = args[args.length - 1];
      const signal = last instanceof AbortSignal ? last : undefined;
      return policy.execute(() => target.apply(this, args), signal);
    };
    Object.defineProperty(decorated, 'name', { value: name, configurable: true });
    return decorated;
  };
}
