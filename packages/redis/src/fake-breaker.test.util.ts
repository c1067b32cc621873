/**
 * Test support: a recording handle standing in for a breaker (the store never needs more).
 * Not published, not a test.
 * @module
 */
import type { BreakerSnapshot } from 'tripswitch';
import type { BreakerHandle, CircuitState, StoreSession } from './contract.js';

export class FakeBreaker implements BreakerHandle {
  state: CircuitState = 'closed';
  openUntil: number | undefined;
  readonly applied: Array<{ state: CircuitState; openUntil?: number; reason: string }> = [];
  session!: StoreSession;
  constructor(readonly name: string) {}
  snapshot(): BreakerSnapshot {
    // the store never reads snapshots; a real breaker's shape is not needed here
    return { state: this.state } as unknown as BreakerSnapshot;
  }
  applyRemote(u: { state: CircuitState; openUntil?: number; reason: string }): void {
    this.applied.push(u);
    this.state = u.state;
    this.openUntil = u.openUntil;
  }
  /** A local transition, as the breaker would make it. */
  go(to: CircuitState, reason: string, openMs?: number): void {
    const from = this.state;
    this.state = to;
    this.openUntil = openMs === undefined ? undefined : Date.now() + openMs;
    this.session.onTransition({ from, to, reason, openUntil: this.openUntil });
  }
}
