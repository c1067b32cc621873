/**
 * The sidecar proxy: owns the listeners (`listener.ts`) and the cluster runtimes (`cluster.ts`),
 * hands each request to the filter chain (`exchange.ts`) and each Upgrade to a tunnel
 * (`tunnel.ts`), swaps everything on reload and drains on shutdown. The request path, filter by
 * filter, is described in docs/sidecar.md.
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type BreakerRegistry, breakerRegistry, type CircuitBreaker, type Clock } from 'tripswitch';
import { realClock } from '../clock.js';
import {
  type ResolvedCluster,
  type ResolvedConfig,
  type ResolvedListener,
  resolveConfig,
} from '../config/resolve.js';
import type { SidecarConfig } from '../config/schema.js';
import { type TlsMaterial, tlsMaterial } from '../config/tls.js';
import type { ClusterRecorder, TraceRecorderFactory } from '../record-trace.js';
import type { SharedStore, SharedStoreFactory } from '../shared-state.js';
import { limiterFor } from './admission.js';
import { Cluster } from './cluster.js';
import { Exchange, type ExchangeHost } from './exchange.js';
import { checkHead, refuse, refuseRaw, serveOnConnection, upgradeOnConnection } from './head.js';
import { plain, rawReply } from './http.js';
import { type ListenerSlot, needsRestart, openListener, updateListener } from './listener.js';
import { ownServerProblem } from './llhttp.js';
import { type Logger, stderrLogger } from './logger.js';
import { type CompiledRoute, compileRoute, findRoute } from './route.js';
import { Tunnel, type TunnelHost } from './tunnel.js';
import { sharedCounters } from './shared-counters.js';
import { SIDECAR_COUNTERS, type SharedPlan, type WorkerShare } from './shared-plan.js';

export { type Logger, stderrLogger } from './logger.js';

/**
 * Options of {@link Sidecar}.
 *
 * @example
 * ```ts
 * const options: SidecarOptions = { logger, clock: new TestClock(), random: () => 0.5 }; // deterministic tests
 * ```
 */
export interface SidecarOptions {
  /** @default realClock */
  clock?: Clock;
  /** @default stderrLogger */
  logger?: Logger;
  /** Randomness for backoff jitter. @default Math.random */
  random?: () => number;
  /**
   * Makes the stores of `shared_state` blocks: `await loadSharedState()` (loads
   * `@tripswitch/redis`). Required when a cluster has `shared_state`.
   */
  sharedState?: SharedStoreFactory;
  /**
   * `workers: N`: the shared memory and which worker this is (-1: the main thread's view of the
   * totals, which opens no listener). Made by `startWorkers()`.
   */
  share?: WorkerShare;
  /** With `share`: the ports the first worker bound, in listener order (port 0 resolved once). */
  ports?: number[];
  /**
   * Makes the recorders of `record_trace` blocks: `await loadTraceRecorder()` (loads
   * `@tripswitch/tuner`). Required when a cluster has `record_trace`.
   */
  recordTrace?: TraceRecorderFactory;
}

interface State {
  config: ResolvedConfig;
  clusters: Map<string, Cluster>;
}

/**
 * The proxy process: owns listeners and cluster runtimes; {@link Sidecar.reload} swaps them.
 *
 * @example
 * ```ts
 * const sidecar = new Sidecar(loadConfig('tripswitch.yaml'));
 * await sidecar.start();
 * process.on('SIGTERM', () => sidecar.shutdown().then(() => process.exit(0)));
 * ```
 */
export class Sidecar implements ExchangeHost, TunnelHost {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  /** The clusters' breakers, by cluster name (what `@tripswitch/prometheus` follows). */
  readonly breakers: BreakerRegistry;
  #state: State;
  #sharedState: SharedStoreFactory | undefined;
  /** The stores of `shared_state` blocks, by cluster name, with the settings they were made from. */
  #stores = new Map<string, { key: string; store: SharedStore }>();
  #recordTrace: TraceRecorderFactory | undefined;
  /** The recorders of `record_trace` blocks, by cluster name, with the block and breaker they follow. */
  #recorders = new Map<string, { key: string; breaker: CircuitBreaker; recorder: ClusterRecorder }>();
  #slots = new Map<string, ListenerSlot>();
  #share: WorkerShare | undefined;
  #ports: number[] | undefined;
  /** The main thread's view: the workers' addresses, set by `startWorkers()`. */
  #viewAddresses: { address: string; port: number }[] = [];
  /** Requests and tunnels in flight. */
  inflight = 0;
  #drainWaiters: (() => void)[] = [];
  #tunnels = new Set<Tunnel>();
  #stopping = false;
  /** Requests that matched no route. */
  noRoute = 0;
  /** Requests refused before routing (bad head: Host, target, header count, Expect), answered 4xx. */
  refused = 0;
  readonly #handlers = {
    request: (slot: ListenerSlot, req: IncomingMessage, res: ServerResponse) => this.#handle(slot, req, res),
    upgrade: (slot: ListenerSlot, req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#upgrade(slot, req, socket, head),
    serve: (slot: ListenerSlot, req: IncomingMessage, res: ServerResponse) => this.#serve(slot, req, res),
  };

  constructor(config: SidecarConfig, options: SidecarOptions = {}) {
    this.clock = options.clock ?? realClock;
    this.logger = options.logger ?? stderrLogger;
    this.random = options.random ?? Math.random;
    this.breakers = breakerRegistry({ clock: this.clock });
    this.#sharedState = options.sharedState;
    this.#share = options.share;
    this.#ports = options.ports;
    if (this.#share) {
      // each worker counts in its own words; the main thread's view reads the sums
      const c = sharedCounters(SIDECAR_COUNTERS, this.#share.plan.sidecar, this.#share.worker);
      for (const k of SIDECAR_COUNTERS)
        Object.defineProperty(this, k, {
          get: () => c[k],
          set: (v: number) => {
            c[k] = v;
          },
        });
    }
    this.#recordTrace = options.recordTrace;
    const resolved = resolveConfig(config);
    this.#checkSharedState(resolved, this.#sharedState);
    if (this.#records) Sidecar.#checkRecordTrace(resolved, this.#recordTrace);
    this.#state = this.#build(resolved, undefined);
    for (const c of this.#state.clusters.values()) c.attachBreaker(this.breakers, (rc) => this.#storeFor(rc));
    this.#startRecorders();
  }

  /**
   * Whether this Sidecar records `record_trace` blocks: alone, or as the main thread's view of
   * `workers: N`, whose breaker settles the calls every worker forwards; never a worker thread.
   */
  get #records(): boolean {
    return this.#share === undefined || this.#share.worker === -1;
  }

  static #checkRecordTrace(config: ResolvedConfig, factory: TraceRecorderFactory | undefined): void {
    const needs = config.clusters.find((c) => c.record_trace !== undefined);
    if (needs && !factory)
      throw new Error(
        `cluster "${needs.name}": record_trace needs a recorder factory: create the Sidecar with { recordTrace: await loadTraceRecorder() } (the CLI does this)`,
      );
  }

  /**
   * Starts, keeps or stops each cluster's recorder to match the clusters in force: kept while its
   * block and its breaker are the same; a changed block or a new breaker gets a new recorder once
   * the old one has written out and closed its file (they may share it); a removed block stops.
   */
  async #syncRecorders(): Promise<void> {
    const clusters = this.#stopping ? new Map<string, Cluster>() : this.#state.clusters;
    const stopping: Promise<void>[] = [];
    for (const [name, had] of this.#recorders) {
      const c = clusters.get(name);
      const key = c?.config.record_trace && JSON.stringify(c.config.record_trace);
      if (key === had.key && c?.breaker === had.breaker) continue;
      this.#recorders.delete(name);
      stopping.push(this.#stopRecorder(name, had.recorder));
    }
    await Promise.all(stopping);
    if (!this.#stopping) this.#startRecorders();
  }

  /** Starts a recorder for each cluster in force with `record_trace` and none yet. */
  #startRecorders(): void {
    if (!this.#records) return;
    for (const [name, c] of this.#state.clusters) {
      const r = c.config.record_trace;
      if (r === undefined || c.breaker === undefined || this.#recorders.has(name)) continue;
      const recorder = this.#recordTrace!(c.breaker, r, { clock: this.clock });
      this.#recorders.set(name, { key: JSON.stringify(r), breaker: c.breaker, recorder });
      this.logger.info('recording trace', { cluster: name, file: r.file });
    }
  }

  async #stopRecorder(cluster: string, recorder: ClusterRecorder): Promise<void> {
    try {
      await recorder.stop();
    } catch (err) {
      this.logger.warn('trace recorder did not close cleanly', { cluster, error: String(err) });
    }
    this.logger.info('trace recorder stopped', { cluster, ...recorder.stats() });
  }

  #checkSharedState(config: ResolvedConfig, factory: SharedStoreFactory | undefined): void {
    const needs = config.clusters.find((c) => c.shared_state !== undefined);
    if (needs && !factory)
      throw new Error(
        `cluster "${needs.name}": shared_state needs a store factory: create the Sidecar with { sharedState: await loadSharedState() } (the CLI does this)`,
      );
  }

  /** The store of a cluster's `shared_state` (made once per distinct block), or undefined. */
  #storeFor(c: ResolvedCluster): SharedStore | undefined {
    const s = c.shared_state;
    if (s === undefined || this.#sharedState === undefined) return undefined;
    const key = JSON.stringify(s);
    const had = this.#stores.get(c.name);
    if (had?.key === key) return had.store;
    const store = this.#sharedState(c.name, s, { clock: this.clock, logger: this.logger });
    this.#stores.set(c.name, { key, store });
    if (had) void had.store.close().catch(() => {});
    return store;
  }

  /** Closes the stores no cluster in force uses any more (their breakers left the registry). */
  async #closeStores(keep: ReadonlyMap<string, Cluster>): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const [name, { key, store }] of this.#stores) {
      const c = keep.get(name)?.config.shared_state;
      if (c !== undefined && JSON.stringify(c) === key) continue;
      this.#stores.delete(name);
      closing.push(store.close().catch(() => {}));
    }
    await Promise.all(closing);
  }

  /** True once {@link Sidecar.shutdown} started (readiness turns false). */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** The configuration in force, as given. */
  get config(): SidecarConfig {
    return this.#state.config.source;
  }

  /** The configuration in force with every default applied (see `CONFIG_DEFAULTS`). */
  get resolved(): ResolvedConfig {
    return this.#state.config;
  }

  /** The clusters in force, by name. */
  get clusters(): ReadonlyMap<string, Cluster> {
    return this.#state.clusters;
  }

  #build(config: ResolvedConfig, previous: State | undefined): State {
    const clusters = new Map<string, Cluster>();
    for (const c of config.clusters)
      clusters.set(
        c.name,
        new Cluster(
          c,
          this.clock,
          previous?.clusters.get(c.name),
          this.breakers,
          this.#share
            ? { blocks: this.#share.plan.clusters[c.name]!, worker: this.#share.worker }
            : undefined,
        ),
      );
    return { config, clusters };
  }

  static #routes(l: ResolvedListener, clusters: Map<string, Cluster>, old?: ListenerSlot): CompiledRoute[] {
    return l.routes.map((r, i) => compileRoute(r, clusters, old?.routes[i]));
  }

  #open(l: ResolvedListener, clusters: Map<string, Cluster>, port?: number): Promise<ListenerSlot> {
    const tls = l.tls ? tlsMaterial(l.tls, `listener ${l.name ?? l.key} tls`) : undefined;
    const bind = this.#share ? { reusePort: true, port: port ?? l.port } : {};
    return openListener(l, Sidecar.#routes(l, clusters), tls, this.#handlers, this.logger, bind);
  }

  /** True for the main thread's view of `workers: N` (no listeners; totals for the admin). */
  get isView(): boolean {
    return this.#share?.worker === -1;
  }

  /** @internal The main thread's view: the addresses the workers listen on. */
  setViewAddresses(a: { address: string; port: number }[]): void {
    this.#viewAddresses = a;
  }

  /** Opens the listeners. */
  async start(): Promise<void> {
    if (this.isView) return;
    const listeners = this.#state.config.listeners;
    const given = this.#state.config.source.listeners;
    for (let i = 0; i < listeners.length; i++) {
      // A plain listener that did not name http_server got node instead of own: say why, once.
      const why = given[i]?.http_server === undefined && !given[i]?.tls ? ownServerProblem() : undefined;
      if (why !== undefined)
        this.logger.info('http_server: node, as own cannot run on this Node', {
          listener: listeners[i]!.name ?? listeners[i]!.key,
          reason: why,
        });
      const slot = await this.#open(listeners[i]!, this.#state.clusters, this.#ports?.[i]);
      this.#slots.set(slot.key, slot);
    }
  }

  /** The bound address of each listener, in config order (port 0 resolved). */
  addresses(): { address: string; port: number }[] {
    if (this.isView) return this.#viewAddresses;
    return [...this.#slots.values()].map((s) => {
      const a = s.server.address() as AddressInfo;
      return { address: a.address, port: a.port };
    });
  }

  #handle(slot: ListenerSlot, req: IncomingMessage, res: ServerResponse): void {
    // Behind a refused request on the same connection: dropped, the connection is closing. Behind
    // a response still owed: served once it is finished, unless it closed the connection.
    if (serveOnConnection(req, res, this.#serve, slot)) this.#serve(slot, req, res);
  }

  readonly #serve = (slot: ListenerSlot, req: IncomingMessage, res: ServerResponse): void => {
    const refusal = checkHead(req, slot.maxHeadersCount);
    if (refusal) {
      this.refused++;
      refuse(req, res, refusal.status, refusal.reason);
      return;
    }
    this.inflight++;
    if (this.#stopping) res.shouldKeepAlive = false;
    const route = findRoute(slot.routes, req);
    if (!route) {
      this.noRoute++;
      res.once('close', () => this.exchangeClosed());
      plain(res, 404, 'no route\n');
      return;
    }
    route.cluster.counters.requests++;
    new Exchange(this, req, res, route, limiterFor(route, req, slot.priorityHeader)).start();
  };

  /**
   * An Upgrade request (node hands over the socket): routed, admitted (breaker permit, one limiter
   * slot for the tunnel's lifetime, no waiting) and tunnelled, or answered locally and closed.
   */
  #upgrade(slot: ListenerSlot, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    // Pipelined behind a response still owed: once it is finished, unless it closed the connection.
    if (upgradeOnConnection(socket, () => this.#tunnel(slot, req, socket, head)))
      this.#tunnel(slot, req, socket, head);
  }

  #tunnel(slot: ListenerSlot, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refusal = checkHead(req, slot.maxHeadersCount);
    if (refusal) {
      this.refused++;
      refuseRaw(socket, refusal.status, refusal.reason);
      return;
    }
    // Node hands the socket over right after the head: content the request announces would be
    // read as the new protocol, and forwarding its length would leave the upstream waiting for a
    // body that never comes (holding the tunnel's slot and the in-flight count until the route
    // timeout, then blamed on the upstream).
    const cl = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (cl !== undefined && !/^0+$/.test(cl))) {
      this.refused++;
      refuseRaw(socket, 400, 'an Upgrade request cannot carry a body');
      return;
    }
    if (req.method !== 'GET') {
      rawReply(socket, 405, 'upgrade requests are proxied for GET only\n', { allow: 'GET' });
      return;
    }
    if (this.#stopping) {
      rawReply(socket, 503, 'shutting down\n');
      return;
    }
    const route = findRoute(slot.routes, req);
    if (!route) {
      this.noRoute++;
      rawReply(socket, 404, 'no route\n');
      return;
    }
    route.cluster.counters.requests++;
    const t = new Tunnel(this, req, socket, head, route, limiterFor(route, req, slot.priorityHeader));
    if (!t.open()) return;
    this.inflight++;
    this.#tunnels.add(t);
    t.start();
  }

  /** @internal */
  exchangeClosed(): void {
    this.inflight--;
    this.#drained();
  }

  /** @internal */
  tunnelClosed(t: Tunnel): void {
    if (!this.#tunnels.delete(t)) return;
    this.inflight--;
    this.#drained();
  }

  #drained(): void {
    if (this.inflight === 0 && this.#drainWaiters.length > 0) {
      for (const w of this.#drainWaiters.splice(0)) w();
    }
  }

  /**
   * Applies a new (already validated) config: routes and clusters swap at once; requests in flight
   * finish on the objects they started with; pools and breakers carry over where unchanged.
   */
  async reload(
    source: SidecarConfig,
    options: { sharedState?: SharedStoreFactory; recordTrace?: TraceRecorderFactory; plan?: SharedPlan } = {},
  ): Promise<void> {
    const resolved = resolveConfig(source);
    const factory = options.sharedState ?? this.#sharedState;
    this.#checkSharedState(resolved, factory);
    const recordTrace = options.recordTrace ?? this.#recordTrace;
    if (this.#records) Sidecar.#checkRecordTrace(resolved, recordTrace);
    if (this.#share) {
      if (options.plan === undefined)
        throw new Error('workers: a reload needs the shared plan of the new config');
      for (const l of resolved.listeners)
        if (l.port === 0 && !this.#slots.has(l.key) && !this.isView)
          throw new Error(
            `listener ${l.name ?? l.key}: with workers > 1 a listener added by a reload needs a port other than 0 (each worker would bind its own)`,
          );
      this.#share = { plan: options.plan, worker: this.#share.worker };
    }
    this.#sharedState = factory;
    this.#recordTrace = recordTrace;
    // The main thread's view has no listeners: only its clusters change.
    const config = this.isView ? { ...resolved, listeners: [] } : resolved;
    // A bound server cannot switch between HTTP and HTTPS or start/stop asking for client
    // certificates: refuse before anything changes.
    for (const l of config.listeners) {
      const slot = this.#slots.get(l.key);
      const why = slot && needsRestart(slot, l);
      if (why) throw new Error(why);
    }
    const tlsNext = new Map<string, TlsMaterial>();
    for (const l of config.listeners)
      if (l.tls && this.#slots.has(l.key))
        tlsNext.set(l.key, tlsMaterial(l.tls, `listener ${l.name ?? l.key} tls`));
    const old = this.#state;
    const next = this.#build(config, old);
    // New listeners are bound before anything changes, so a port in use leaves the old config
    // fully in force.
    const opened: ListenerSlot[] = [];
    try {
      for (const l of config.listeners)
        if (!this.#slots.has(l.key)) opened.push(await this.#open(l, next.clusters));
    } catch (err) {
      for (const s of opened) s.server.close();
      for (const [name, c] of next.clusters)
        for (const pool of c.poolsNotIn(old.clusters.get(name))) void pool.destroy().catch(() => {});
      throw err;
    }
    this.#state = this.isView ? { ...next, config: resolved } : next;
    // Breakers not carried over leave the registry before their replacements join it.
    for (const [name, c] of old.clusters)
      if (c.breaker && c.breaker !== next.clusters.get(name)?.breaker) this.breakers.delete(name);
    for (const c of next.clusters.values()) c.attachBreaker(this.breakers, (rc) => this.#storeFor(rc));
    await this.#closeStores(next.clusters);
    await this.#syncRecorders();
    for (const s of opened) this.#slots.set(s.key, s);
    const keys = new Set<string>();
    for (const l of config.listeners) {
      keys.add(l.key);
      const slot = this.#slots.get(l.key)!;
      if (opened.includes(slot)) continue;
      updateListener(slot, l, Sidecar.#routes(l, next.clusters, slot), tlsNext.get(l.key), this.logger);
    }
    for (const [key, slot] of this.#slots) {
      if (keys.has(key)) continue;
      this.#slots.delete(key);
      slot.server.close();
    }
    for (const [name, c] of old.clusters)
      for (const pool of c.poolsNotIn(next.clusters.get(name))) void pool.close().catch(() => {});
    this.logger.info('config reloaded', { clusters: [...next.clusters.keys()] });
  }

  /**
   * Stops accepting, waits up to `drainMs` for requests in flight, then closes everything.
   * Resolves true when everything drained in time.
   */
  async shutdown(drainMs = this.#state.config.drain_timeout_ms): Promise<boolean> {
    this.#stopping = true;
    for (const s of this.#slots.values()) {
      s.server.close();
      s.server.closeIdleConnections();
      s.own?.closeIdle();
    }
    let drained = true;
    if (this.inflight > 0) {
      drained = await new Promise<boolean>((resolve) => {
        const t = this.clock.setTimeout(() => resolve(false), drainMs).unref();
        this.#drainWaiters.push(() => {
          this.clock.clearTimeout(t);
          resolve(true);
        });
      });
    }
    for (const s of this.#slots.values()) {
      s.server.closeAllConnections();
      s.own?.closeAll();
    }
    for (const t of [...this.#tunnels]) t.close();
    this.#slots.clear();
    for (const c of this.#state.clusters.values()) {
      this.breakers.delete(c.name);
      await Promise.all(c.hosts.map((h) => (drained ? h.pool.close() : h.pool.destroy()).catch(() => {})));
    }
    await this.#closeStores(new Map());
    // The main thread's view: the outcomes the workers forwarded while they drained (they have
    // stopped by now) reach the breaker, and so the trace, before the recorders close.
    if (this.isView) for (const c of this.#state.clusters.values()) c.sharedBreaker?.drain();
    // After the drain, so that what the requests in flight settled is in the trace.
    await this.#syncRecorders();
    return drained;
  }
}
