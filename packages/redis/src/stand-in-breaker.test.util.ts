// TEMPORARY stand-in for the core breaker (test-only, never published): exercises the store hooks per the
// documented contract until packages/core/src/breaker.ts lands.
import { CircuitOpenError } from 'tripswitch';
import type { BreakerStore, CircuitState, StoreSession } from './contract.js';

type L = (e: { from: CircuitState; to: CircuitState; reason: string; name: string; at: number }) => void;

export function circuitBreaker(o: {
  name?: string;
  trip?: { kind: 'consecutive'; threshold: number };
  openDuration?: number;
  halfOpen?: { maxProbes?: number; successesToClose?: number };
  store?: BreakerStore;
}) {
  const name = o.name ?? 'default';
  const threshold = o.trip?.threshold ?? 5;
  const openMs = o.openDuration ?? 30_000;
  const maxProbes = o.halfOpen?.maxProbes ?? 1;
  const toClose = o.halfOpen?.successesToClose ?? 1;
  let state: CircuitState = 'closed';
  let nextAttemptAt: number | undefined;
  let consecutive = 0;
  let probes = 0;
  let probeOk = 0;
  const listeners: L[] = [];
  let session: StoreSession | undefined;
  const now = () => performance.timeOrigin + performance.now();
  const move = (to: CircuitState, reason: string, publish: boolean, openUntil?: number) => {
    const from = state;
    state = to;
    if (to === 'open') nextAttemptAt = openUntil ?? now() + openMs;
    else nextAttemptAt = undefined;
    if (to === 'closed' || to === 'half-open') {
      consecutive = 0;
      probes = 0;
      probeOk = 0;
    }
    if (publish) session?.onTransition({ from, to, reason, openUntil: nextAttemptAt });
    if (from !== to) for (const l of listeners) l({ from, to, reason, name, at: now() });
  };
  const b = {
    name,
    get state() {
      return state;
    },
    get nextAttemptAt() {
      return nextAttemptAt;
    },
    on(ev: 'stateChange', l: L) {
      if (ev === 'stateChange') listeners.push(l);
      return { dispose() {} };
    },
    isolate: () => move('isolated', 'isolate', true),
    close: () => move('disabled', 'close', true),
    reset: () => move('closed', 'reset', true),
    async execute<T>(fn: () => T | Promise<T>): Promise<T> {
      if (state === 'open' && now() >= nextAttemptAt!) {
        if (!session?.requestProbe || session.requestProbe()) move('half-open', 'open period over', true);
      }
      if (state === 'open' || state === 'isolated' || (state === 'half-open' && probes >= maxProbes)) {
        throw CircuitOpenError.fast({
          breakerName: name,
          state,
          retryAt: nextAttemptAt,
          retryAfter: nextAttemptAt === undefined ? undefined : nextAttemptAt - now(),
        });
      }
      const probing = state === 'half-open';
      if (probing) probes++;
      try {
        const r = await fn();
        session?.onOutcome?.('success');
        if (probing && state === 'half-open' && ++probeOk >= toClose)
          move('closed', 'probes succeeded', true);
        else if (state === 'closed') consecutive = 0;
        return r;
      } catch (err) {
        session?.onOutcome?.('failure');
        if (probing && state === 'half-open') move('open', 'probe failed', true);
        else if (state === 'closed' && ++consecutive >= threshold) move('open', 'consecutive failures', true);
        throw err;
      }
    },
  };
  if (o.store) {
    session = o.store.attach({
      name,
      get state() {
        return state;
      },
      snapshot: () => ({ state }),
      applyRemote: (u) => move(u.state, u.reason, false, u.openUntil),
    });
  }
  return b;
}
