// One "instance" of a service for fleet.test.ts: a real tripswitch breaker on a redisStore, driven
// over the IPC channel. Not a test file (does not end in .test.js) and not published.
import { circuitBreaker, isCircuitOpenError } from 'tripswitch';
import { type RedisStoreOptions, redisStore } from './store.js';

type Outcome = 'ok' | 'fail' | 'hang';
type Request =
  | { id: number; op: 'init'; store: RedisStoreOptions; breaker: Record<string, unknown> }
  | { id: number; op: 'calls'; n: number; outcome: Outcome; gapMs?: number }
  | { id: number; op: 'startAndCall'; store: RedisStoreOptions; breaker: Record<string, unknown>; n: number }
  | { id: number; op: 'release'; outcome: 'ok' | 'fail' }
  | { id: number; op: 'state' }
  | { id: number; op: 'isolate' | 'close' | 'reset' }
  | { id: number; op: 'exit' };

const now = () => performance.timeOrigin + performance.now();
const send = (m: unknown) => process.send?.(m);

let breaker: ReturnType<typeof circuitBreaker> | undefined;
let store: ReturnType<typeof redisStore> | undefined;
let upstream = 0;
const hanging: Array<{ resolve: (v: string) => void; reject: (e: Error) => void }> = [];

async function call(outcome: Outcome): Promise<'ok' | 'failed' | 'rejected' | 'started'> {
  const b = breaker!;
  const p = b.execute(() => {
    upstream++;
    if (outcome === 'ok') return 'fine';
    if (outcome === 'fail') throw new Error('upstream failed');
    return new Promise<string>((resolve, reject) => hanging.push({ resolve, reject }));
  });
  if (outcome === 'hang') {
    // started, or rejected at once: look without waiting for the hang
    const r = await Promise.race([
      p.then(() => 'ok' as const),
      new Promise<'started'>((r) => setImmediate(() => r('started'))),
    ]).catch((err: unknown) => (isCircuitOpenError(err) ? ('rejected' as const) : ('failed' as const)));
    p.catch(() => {});
    return r;
  }
  try {
    await p;
    return 'ok';
  } catch (err) {
    return isCircuitOpenError(err) ? 'rejected' : 'failed';
  }
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'init': {
      store = redisStore({ logger: false, ...req.store });
      store.on('degraded', () => send({ ev: 'degraded', at: now() }));
      store.on('recovered', () => send({ ev: 'recovered', at: now() }));
      breaker = circuitBreaker({ ...req.breaker, store } as Parameters<typeof circuitBreaker>[0]);
      breaker.on('stateChange', (e) =>
        send({ ev: 'state', from: e.from, to: e.to, reason: e.reason, at: now() }),
      );
      const ready = await store.ready(5000);
      return { ready, state: breaker.state };
    }
    case 'startAndCall': {
      // A process that takes traffic the moment it starts: no ready(), calls in the same tick as
      // the store is made, some at once and some one after another.
      store = redisStore({ logger: false, ...req.store });
      breaker = circuitBreaker({ ...req.breaker, store } as Parameters<typeof circuitBreaker>[0]);
      const r = { ok: 0, failed: 0, rejected: 0, started: 0, upstream: 0 };
      const burst = await Promise.all(Array.from({ length: req.n }, () => call('ok')));
      for (const x of burst) r[x]++;
      for (let i = 0; i < req.n; i++) r[await call('ok')]++;
      r.upstream = upstream;
      return r;
    }
    case 'calls': {
      const r = { ok: 0, failed: 0, rejected: 0, started: 0, upstream: 0 };
      const before = upstream;
      for (let i = 0; i < req.n; i++) {
        r[await call(req.outcome)]++;
        if (req.gapMs) await new Promise((res) => setTimeout(res, req.gapMs));
      }
      r.upstream = upstream - before;
      return r;
    }
    case 'release': {
      const n = hanging.length;
      for (const h of hanging.splice(0)) {
        if (req.outcome === 'ok') h.resolve('fine');
        else h.reject(new Error('probe failed'));
      }
      return { released: n };
    }
    case 'state':
      return { state: breaker!.state, nextAttemptAt: breaker!.nextAttemptAt, upstream, now: now() };
    case 'isolate':
      breaker!.isolate();
      return { state: breaker!.state };
    case 'close':
      breaker!.forceClose();
      return { state: breaker!.state };
    case 'reset':
      breaker!.reset();
      return { state: breaker!.state };
    case 'exit':
      for (const h of hanging.splice(0)) h.reject(new Error('exiting'));
      await store?.close();
      setImmediate(() => process.disconnect?.());
      return { bye: true };
  }
}

process.on('message', (req: Request) => {
  handle(req).then(
    (result) => send({ id: req.id, result }),
    (err: unknown) => send({ id: req.id, error: String(err) }),
  );
});
process.on('unhandledRejection', (err) => {
  send({ ev: 'unhandledRejection', error: String(err) });
});
