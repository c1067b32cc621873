/**
 * The demo's services kept running for hands-on use (`tripswitch demo --keep-running`): Service B,
 * an unprotected Service A and a protected Service A on fixed ports (`port`, `port + 1`,
 * `port + 2`), both A's calling the one B, with `/metrics` on both and the dashboard on the
 * protected one. B's mode is switched by `POST /mode` on the base port (`tripswitch demo mode`).
 *
 * @module
 */
import { type BreakerRegistry, breakerRegistry } from 'tripswitch';
import { fmtMs } from './report.js';
import { type ServiceA, type SideHandler, startServiceA } from './service-a.js';
import { isUpstreamMode, startUpstream, UPSTREAM_MODES, type Upstream } from './upstream.js';

/** The default base port: B on 3000, unprotected A on 3001, protected A on 3002. */
export const DEFAULT_DEMO_PORT = 3000;

/**
 * Options of {@link startDemoServices}; durations in ms.
 *
 * @example
 * ```ts
 * const options: DemoServicesOptions = { port: 3000, clientTimeoutMs: 10_000 };
 * ```
 */
export interface DemoServicesOptions {
  /** B listens here, the unprotected A on port + 1, the protected A on port + 2; 0: three ephemeral ports (tests). @default 3000 */
  port?: number;
  /** Service A's workers (each A). @default 10 */
  workers?: number;
  /** Connections from each A to B. @default 10 */
  upstreamConnections?: number;
  /** The HTTP client's headers/body timeout for A's calls to B. @default 10_000 */
  clientTimeoutMs?: number;
  /** Protected: timeout per attempt. @default 300 */
  timeoutMs?: number;
  /** Protected: open duration of the breaker. @default 1_000 */
  openDurationMs?: number;
  /** Protected: how long the last good answer may be served. @default 60_000 */
  lastGoodTtlMs?: number;
  /** B's `slow` delay. @default 2_000 */
  slowMs?: number;
  /** Serve the dashboard from the protected A when the module exists. @default true */
  dashboard?: boolean;
  /** Loads the dashboard handler for a registry (the runner's loader; none: no dashboard). */
  loadDashboard?: (registry: BreakerRegistry) => Promise<SideHandler | undefined>;
}

/**
 * The kept services, made by {@link startDemoServices}.
 *
 * @example
 * ```ts
 * const s: DemoServices = await startDemoServices({ port: 3000 });
 * console.log(formatServices(s));
 * ```
 */
export interface DemoServices {
  readonly upstream: Upstream;
  readonly unprotected: ServiceA;
  readonly protected: ServiceA;
  /** The dashboard's URL, when the dashboard module was available. */
  readonly dashboard: string | undefined;
  /** The unprotected A's client timeout, in ms (what bounds its wait on a hanging B). */
  readonly clientTimeoutMs: number;
  close(): Promise<void>;
}

/**
 * A port the demo wanted is taken (or not allowed). `code` is the listen error's (`EADDRINUSE`, `EACCES`).
 *
 * @example
 * ```ts
 * try { await startDemoServices({ port: 3000 }); } catch (err) { if (err instanceof DemoPortError) console.error(err.message); }
 * ```
 */
export class DemoPortError extends Error {
  override readonly name = 'DemoPortError';
  constructor(
    readonly port: number,
    readonly service: string,
    readonly code: string,
  ) {
    super(
      `port ${port} (${service}) on 127.0.0.1 ${code === 'EADDRINUSE' ? 'is already in use' : `cannot be used (${code})`}; ` +
        'stop what holds it or choose another base with --port (B at base, unprotected A at base+1, protected A at base+2)',
    );
  }
}

async function listenOn<T>(port: number, service: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') throw new DemoPortError(port, service, code);
    throw err;
  }
}

/**
 * Starts B, the unprotected A and the protected A on fixed ports and primes the protected A's last
 * good answer with one call while B is healthy (a service that has been running has one).
 *
 * @example
 * ```ts
 * const s = await startDemoServices({ port: 3000 });
 * // ... ab -n 100 -c 20 -l http://127.0.0.1:3002/orders
 * await s.close();
 * ```
 */
export async function startDemoServices(options: DemoServicesOptions = {}): Promise<DemoServices> {
  const base = options.port ?? DEFAULT_DEMO_PORT;
  if (!Number.isInteger(base) || base < 0 || base > 65_533)
    throw new RangeError(
      `startDemoServices: option "port" must be an integer in [0, 65533] (three ports from it), got ${String(base)}`,
    );
  const at = (i: number) => (base === 0 ? 0 : base + i);
  const clientTimeoutMs = options.clientTimeoutMs ?? 10_000;
  const opened: { close(): Promise<void> }[] = [];
  try {
    const upstream = await listenOn(at(0), 'Service B', () =>
      startUpstream({ port: at(0), ...(options.slowMs !== undefined ? { slowMs: options.slowMs } : {}) }),
    );
    opened.push(upstream);
    const common = {
      upstreamUrl: upstream.url,
      clientTimeoutMs,
      metrics: true,
      ...(options.workers !== undefined ? { workers: options.workers } : {}),
      ...(options.upstreamConnections !== undefined
        ? { upstreamConnections: options.upstreamConnections }
        : {}),
    };
    const unprotected = await listenOn(at(1), 'unprotected Service A', () =>
      startServiceA({ ...common, protected: false, port: at(1) }),
    );
    opened.push(unprotected);
    const registry = breakerRegistry();
    const side =
      options.dashboard !== false && options.loadDashboard !== undefined
        ? await options.loadDashboard(registry)
        : undefined;
    const prot = await listenOn(at(2), 'protected Service A', () =>
      startServiceA({
        ...common,
        protected: true,
        port: at(2),
        registry,
        ...(side !== undefined ? { sideHandler: side } : {}),
        ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
        ...(options.openDurationMs !== undefined ? { openDurationMs: options.openDurationMs } : {}),
        ...(options.lastGoodTtlMs !== undefined ? { lastGoodTtlMs: options.lastGoodTtlMs } : {}),
      }),
    );
    opened.push(prot);
    // One good answer each, so the protected A has a last good value to fall back on.
    for (const a of [unprotected, prot]) {
      const r = await fetch(`${a.url}/orders`);
      await r.arrayBuffer();
    }
    let closing: Promise<void> | undefined;
    return {
      upstream,
      unprotected,
      protected: prot,
      dashboard: side !== undefined ? `${prot.url}/dashboard` : undefined,
      clientTimeoutMs,
      close() {
        closing ??= (async () => {
          await prot.close();
          await unprotected.close();
          await upstream.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    for (const s of opened.reverse()) await s.close();
    throw err;
  }
}

/**
 * The block printed for the kept services: every URL, how to switch B, and the exact `ab`
 * commands of the seed's run (`-l`: the answers' lengths vary, which ab would count as failures).
 *
 * @example
 * ```ts
 * process.stdout.write(formatServices(await startDemoServices()));
 * ```
 */
export function formatServices(s: DemoServices): string {
  const b = s.upstream.url;
  const u = s.unprotected.url;
  const p = s.protected.url;
  const port = s.upstream.port;
  const portFlag = port === DEFAULT_DEMO_PORT ? '' : ` --port ${port}`;
  const ttl = s.protected.lastGood?.ttlMs ?? 60_000;
  return [
    'Still running (Ctrl-C to stop):',
    `  Service B              ${b}/orders   mode: ${b}/mode (now ${s.upstream.mode})`,
    `  Service A unprotected  ${u}/orders  ${u}/profile  ${u}/stats  ${u}/metrics`,
    `                         calls B plainly; only the ${fmtMs(s.clientTimeoutMs)} client timeout bounds a call`,
    `  Service A protected    ${p}/orders  ${p}/profile  ${p}/stats  ${p}/metrics`,
    `                         through tripswitch (timeout ${fmtMs(s.protected.timeoutMs ?? 300)}); the last good answer is served for ${fmtMs(ttl)}, then a degraded answer (x-degraded: 1)`,
    `  dashboard              ${s.dashboard ?? '(not available in this build)'}`,
    '',
    `Switch B (${UPSTREAM_MODES.join(', ')}):`,
    `  npx tripswitch demo mode hanging${portFlag}      or: curl -X POST '${b}/mode?mode=hanging'`,
    `  npx tripswitch demo mode healthy${portFlag}`,
    '',
    "The seed's run (ab -l: the answers' lengths vary, which ab would otherwise count as failures):",
    `  ab -n 100 -c 20 -l ${u}/orders`,
    `  ab -n 100 -c 20 -l ${p}/orders`,
    '',
  ].join('\n');
}

/**
 * Switches (or, with no mode, reads) the mode of the kept Service B on `127.0.0.1:port`, as
 * `tripswitch demo mode` does. Resolves with B's mode afterwards.
 *
 * @example
 * ```ts
 * await demoMode('hanging', { port: 3000 }); // 'hanging'
 * ```
 */
export async function demoMode(mode: string | undefined, options: { port?: number } = {}): Promise<string> {
  const port = options.port ?? DEFAULT_DEMO_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new RangeError(`--port must be an integer in [1, 65535], got ${String(port)}`);
  if (mode !== undefined && !isUpstreamMode(mode))
    throw new TypeError(`unknown mode "${mode}": the modes are ${UPSTREAM_MODES.join(', ')}`);
  const url = `http://127.0.0.1:${port}/mode`;
  let r: Response;
  try {
    r = await fetch(
      mode === undefined ? url : `${url}?mode=${mode}`,
      mode === undefined ? {} : { method: 'POST' },
    );
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? String(err);
    throw new Error(
      `no Service B answers on 127.0.0.1:${port} (${cause}); start it with: npx tripswitch demo --keep-running${port === DEFAULT_DEMO_PORT ? '' : ` --port ${port}`}`,
    );
  }
  const body = (await r.json().catch(() => undefined)) as { mode?: unknown; error?: unknown } | undefined;
  if (!r.ok || typeof body?.mode !== 'string')
    throw new Error(
      `127.0.0.1:${port}/mode answered ${r.status}${body?.error !== undefined ? `: ${String(body.error)}` : ''} (is it the demo's Service B?)`,
    );
  return body.mode;
}
