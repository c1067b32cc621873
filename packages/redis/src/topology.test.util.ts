/**
 * Test support: a real Redis Cluster (masters + replicas) and a real Sentinel deployment (a master, a
 * replica, sentinels), each on free loopback ports in a temporary directory, with failover triggers.
 *
 * Every wait has a deadline; a start that fails stops what it started; a watchdog shell kills the
 * servers and removes the directory if this process dies without calling `stop()` (SIGKILL, crash).
 * Not published (matches `*.test.*`), not run as a test (does not end in `.test.js`).
 *
 * ```ts
 * const cluster = await RedisCluster.start();          // 3 masters, 3 replicas
 * const client = new Cluster(cluster.startupNodes);
 * const { killed, promoted } = await cluster.killMaster({ key: 'tripswitch:{orders}:s' });
 * await cluster.stop();
 *
 * const sentinel = await RedisSentinel.start({ sentinels: 3 });
 * new Redis({ sentinels: sentinel.sentinelNodes, name: sentinel.masterName });
 * await sentinel.failover('kill');                       // or 'command' (SENTINEL FAILOVER)
 * await sentinel.stop();
 * ```
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './server.test.util.js';

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const serverPath = which('redis-server');
const cliPath = which('redis-cli');
/** `redis-sentinel` (Debian package) when installed; `redis-server --sentinel` is the same program. */
const sentinelPath = which('redis-sentinel');

/** A skip reason when Redis Cluster cannot be started here, otherwise false. */
export const skipNoCluster: string | false =
  serverPath && cliPath
    ? false
    : 'redis-server and redis-cli are needed (apt-get install redis-server redis-tools); Cluster tests skipped';

/** A skip reason when Sentinel cannot be started here, otherwise false. */
export const skipNoSentinel: string | false = serverPath
  ? false
  : 'redis-server is needed (apt-get install redis-server redis-sentinel); Sentinel tests skipped';

/**
 * `n` distinct free loopback ports: all listeners are held open together so no two are the same
 * (another process may still take one before the server binds it; starts retry on that).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve((s.address() as { port: number }).port));
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** One command to one node on its own short-lived connection; rejects within `timeoutMs`. */
export async function ask(port: number, args: string[], timeoutMs = 2_000): Promise<unknown> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    return await r.call(args[0]!, ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

/** Like {@link ask}, but undefined instead of an error (a node that is down or not ready yet). */
async function tryAsk(port: number, args: string[], timeoutMs = 1_000): Promise<unknown> {
  try {
    return await ask(port, args, timeoutMs);
  } catch {
    return undefined;
  }
}

/** `INFO`-style text (`k:v` lines) to a record. */
export function parseInfo(text: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text ?? '').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Sentinel / CONFIG-style flat `[k1, v1, k2, v2]` reply to a record. */
function pairs(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const a = Array.isArray(reply) ? reply : [];
  for (let i = 0; i + 1 < a.length; i += 2) out[String(a[i])] = String(a[i + 1]);
  return out;
}

/**
 * A set of redis processes sharing a temporary directory: spawning, SIGKILL, log tails for error
 * messages, and the watchdog that cleans up if this process dies first.
 */
class Processes {
  readonly dir: string;
  readonly #procs = new Map<number, ChildProcess>();
  readonly #pidFile: string;
  #watchdog: ChildProcess | undefined;
  #onExit = () => this.#killAllSync();
  stopped = false;

  constructor(tag: string) {
    this.dir = mkdtempSync(join(tmpdir(), `tripswitch-${tag}-`));
    this.#pidFile = join(this.dir, 'pids');
    writeFileSync(this.#pidFile, '');
    // Kills the servers and removes the directory once this process is gone, however it went.
    // Bounded: it polls once a second and lives no longer than this process (plus a second).
    this.#watchdog = spawn(
      'sh',
      [
        '-c',
        'while kill -0 "$1" 2>/dev/null; do sleep 1; done; for p in $(cat "$2" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; rm -rf "$3"',
        'tripswitch-watchdog',
        String(process.pid),
        this.#pidFile,
        this.dir,
      ],
      { stdio: 'ignore', detached: true },
    );
    this.#watchdog.unref();
    process.once('exit', this.#onExit);
  }

  spawn(port: number, args: string[], program = serverPath): ChildProcess {
    if (!program) throw new Error('redis-server is not installed');
    const proc = spawn(program, args, { stdio: 'ignore' });
    proc.on('error', () => {});
    this.#procs.set(port, proc);
    writeFileSync(this.#pidFile, `${[...this.#procs.values()].map((p) => p.pid).join('\n')}\n`);
    return proc;
  }

  alive(port: number): boolean {
    const p = this.#procs.get(port);
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  async kill(port: number): Promise<void> {
    const p = this.#procs.get(port);
    this.#procs.delete(port);
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** The last lines of each log file, for an error message about a start or failover that stalled. */
  logTails(lines = 8): string {
    let out = '';
    for (const port of this.#logPorts) {
      const f = join(this.dir, `${port}.log`);
      if (!existsSync(f)) continue;
      const tail = readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n    ');
      out += `\n  ${port}.log:\n    ${tail}`;
    }
    return out;
  }
  readonly #logPorts = new Set<number>();
  logFile(port: number): string {
    this.#logPorts.add(port);
    return join(this.dir, `${port}.log`);
  }

  #killAllSync(): void {
    for (const p of this.#procs.values()) {
      try {
        p.kill('SIGKILL');
      } catch {}
    }
    this.#procs.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stopAll(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.#procs.keys()].map((port) => this.kill(port)));
    process.off('exit', this.#onExit);
    try {
      this.#watchdog?.kill('SIGKILL');
    } catch {}
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs `fn` with a deadline; the error names what stalled and carries the servers' log tails. */
async function bounded<T>(what: string, ms: number, procs: Processes, fn: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
      }),
    ]);
  } catch (err) {
    (err as Error).message += procs.logTails();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link RedisCluster.start}. */
export interface RedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /** @default 1 */
  replicasPerMaster?: number;
  /** `cluster-node-timeout`: how long a master must be unreachable before its replica takes over. @default 1000 */
  nodeTimeoutMs?: number;
  /** Bound on the whole start (servers, `--cluster create`, every node agreeing). @default 30000 */
  startTimeoutMs?: number;
}

/** One node of the cluster as `CLUSTER NODES` reports it. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** Node id of its master, for a replica. */
  masterId: string | undefined;
  failed: boolean;
  /** Slot ranges served, for a master. */
  slots: Array<[number, number]>;
}

function parseClusterNodes(text: unknown): ClusterNodeInfo[] {
  const nodes: ClusterNodeInfo[] = [];
  for (const line of String(text ?? '')
    .trim()
    .split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, addr, flags, master, , , , , ...slotParts] = parts;
    const port = Number(addr!.split('@')[0]!.split(':').pop());
    const f = flags!.split(',');
    const slots: Array<[number, number]> = [];
    for (const s of slotParts) {
      if (s.startsWith('[')) continue; // a slot being migrated or imported
      const [a, b] = s.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    nodes.push({
      id: id!,
      port,
      role: f.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? undefined : master,
      failed: f.includes('fail') || f.includes('fail?'),
      slots,
    });
  }
  return nodes;
}

/**
 * A real Redis Cluster on loopback: `masters` masters with `replicasPerMaster` replicas each, made
 * with `redis-cli --cluster create`, persistence off, each node in the harness's temporary directory.
 */
export class RedisCluster {
  readonly ports: readonly number[];
  readonly nodeTimeoutMs: number;
  /** Masters serving slots (a failover keeps the count: a replica takes its master's place). */
  readonly masters: number;
  readonly #procs: Processes;
  readonly #busPorts: Map<number, number>;
  readonly #killed = new Set<number>();

  private constructor(
    procs: Processes,
    ports: number[],
    busPorts: number[],
    nodeTimeoutMs: number,
    masters: number,
  ) {
    this.#procs = procs;
    this.masters = masters;
    this.ports = ports;
    this.#busPorts = new Map(ports.map((p, i) => [p, busPorts[i]!]));
    this.nodeTimeoutMs = nodeTimeoutMs;
  }

  /** Starts the servers, creates the cluster, and resolves once every node says `cluster_state:ok` and every replica is in sync. */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    if (skipNoCluster) throw new Error(skipNoCluster);
    const masters = options.masters ?? 3;
    const replicas = options.replicasPerMaster ?? 1;
    const nodeTimeout = options.nodeTimeoutMs ?? 1_000;
    if (masters < 3) throw new Error('RedisCluster: redis-cli --cluster create needs at least 3 masters');
    const n = masters * (1 + replicas);
    const procs = new Processes('cluster');
    try {
      const ports = await freePorts(2 * n);
      const cluster = new RedisCluster(procs, ports.slice(0, n), ports.slice(n), nodeTimeout, masters);
      await bounded('RedisCluster.start', options.startTimeoutMs ?? 30_000, procs, async () => {
        for (const port of cluster.ports) cluster.#spawn(port);
        await Promise.all(
          cluster.ports.map((port) =>
            waitFor(() => tryAsk(port, ['PING']), `cluster node ${port} to answer`, 10_000, 20),
          ),
        );
        await new Promise<void>((resolve, reject) => {
          const args = ['--cluster', 'create', ...cluster.ports.map((p) => `127.0.0.1:${p}`)];
          args.push('--cluster-replicas', String(replicas), '--cluster-yes');
          const cli = spawn(cliPath!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          cli.stdout.on('data', (d) => {
            out += d;
          });
          cli.stderr.on('data', (d) => {
            out += d;
          });
          cli.on('error', reject);
          cli.on('exit', (code) =>
            code === 0 ? resolve() : reject(new Error(`redis-cli --cluster create exited ${code}:\n${out}`)),
          );
        });
        await cluster.#converged(n);
      });
      return cluster;
    } catch (err) {
      await procs.stopAll();
      throw err;
    }
  }

  #spawn(port: number): void {
    const args = ['--port', String(port), '--bind', '127.0.0.1'];
    args.push('--cluster-enabled', 'yes', '--cluster-port', String(this.#busPorts.get(port)));
    args.push('--cluster-config-file', join(this.#procs.dir, `nodes-${port}.conf`));
    args.push('--cluster-node-timeout', String(this.nodeTimeoutMs));
    // No delay before a full sync (default 5 s, waiting for more replicas to share one transfer).
    args.push(
      '--save',
      '',
      '--appendonly',
      'no',
      '--repl-diskless-sync-delay',
      '0',
      '--dir',
      this.#procs.dir,
    );
    args.push('--daemonize', 'no', '--loglevel', 'notice', '--logfile', this.#procs.logFile(port));
    this.#procs.spawn(port, args);
  }

  /**
   * Every live node: state ok with all slots served, and the same picture of the cluster (`expectLive`
   * healthy nodes, of which `masters` masters serve slots and the rest are replicas); every live
   * replica's link to its master up. Gossip spreads roles node by node, so one node's view is not enough.
   */
  async #converged(expectLive: number): Promise<void> {
    const live = this.ports.filter((p) => !this.#killed.has(p));
    await waitFor(
      async () => {
        for (const port of live) {
          const info = parseInfo(await tryAsk(port, ['CLUSTER', 'INFO']));
          if (info.cluster_state !== 'ok' || info.cluster_slots_ok !== '16384') return false;
          const healthy = parseClusterNodes(await tryAsk(port, ['CLUSTER', 'NODES'])).filter(
            (x) => !x.failed,
          );
          if (healthy.length !== expectLive) return false;
          const serving = healthy.filter((x) => x.role === 'master' && x.slots.length > 0).length;
          const replicas = healthy.filter((x) => x.role === 'replica').length;
          if (serving !== this.masters || replicas !== expectLive - this.masters) return false;
          const me = parseInfo(await tryAsk(port, ['INFO', 'replication']));
          if (me.role === 'slave' && me.master_link_status !== 'up') return false;
        }
        return true;
      },
      `every cluster node (${live.join(', ')}) to report cluster_state:ok with ${expectLive} healthy nodes (${this.masters} masters) and replicas in sync`,
      Math.max(20_000, this.nodeTimeoutMs * 20),
      50,
    );
  }

  /** `{ host, port }` of every node that is running, for `new Cluster(startupNodes)`. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.ports.filter((p) => !this.#killed.has(p)).map((port) => ({ host: '127.0.0.1', port }));
  }

  /** The cluster as a live node sees it. */
  async nodes(): Promise<ClusterNodeInfo[]> {
    for (const port of this.ports) {
      if (this.#killed.has(port)) continue;
      const reply = await tryAsk(port, ['CLUSTER', 'NODES']);
      if (reply !== undefined) return parseClusterNodes(reply);
    }
    throw new Error('RedisCluster: no node answers');
  }

  /** Port of the master serving `key`'s hash slot. */
  async masterOf(key: string): Promise<number> {
    const live = this.ports.find((p) => !this.#killed.has(p))!;
    const slot = Number(await ask(live, ['CLUSTER', 'KEYSLOT', key]));
    const m = (await this.nodes()).find(
      (x) => x.role === 'master' && !x.failed && x.slots.some(([a, b]) => slot >= a && slot <= b),
    );
    if (!m) throw new Error(`RedisCluster: no master serves slot ${slot} of ${key}`);
    return m.port;
  }

  /**
   * SIGKILLs a master (the one serving `key`, or `port`, or the first) and resolves once one of its
   * replicas is master and every live node reports `cluster_state:ok` again. Needs a replica.
   */
  async killMaster(
    which: { key?: string; port?: number } = {},
    timeoutMs = 30_000,
  ): Promise<{ killed: number; promoted: number; failoverMs: number }> {
    return bounded('RedisCluster.killMaster', timeoutMs, this.#procs, async () => {
      const nodes = await this.nodes();
      const port =
        which.port ??
        (which.key !== undefined
          ? await this.masterOf(which.key)
          : nodes.find((x) => x.role === 'master' && !x.failed)!.port);
      const victim = nodes.find((x) => x.port === port);
      if (victim?.role !== 'master') throw new Error(`RedisCluster: ${port} is not a master`);
      const replicas = nodes.filter((x) => x.masterId === victim.id && !x.failed).map((x) => x.port);
      if (replicas.length === 0) throw new Error(`RedisCluster: master ${port} has no replica to promote`);
      const t0 = Date.now();
      this.#killed.add(port);
      await this.#procs.kill(port);
      const promoted: number = await waitFor(
        async () => {
          for (const r of replicas) {
            const info = parseInfo(await tryAsk(r, ['INFO', 'replication']));
            if (info.role === 'master') return r;
          }
          return 0;
        },
        `a replica of ${port} (${replicas.join(', ')}) to be promoted`,
        timeoutMs,
        25,
      );
      const failoverMs = Date.now() - t0;
      await this.#converged(this.ports.length - this.#killed.size);
      return { killed: port, promoted, failoverMs };
    });
  }

  /** Starts a killed node again on its port; it rejoins (as a replica of whoever took its slots). */
  async restart(port: number, timeoutMs = 30_000): Promise<void> {
    if (!this.#killed.has(port)) throw new Error(`RedisCluster: ${port} was not killed`);
    await bounded('RedisCluster.restart', timeoutMs, this.#procs, async () => {
      this.#spawn(port);
      this.#killed.delete(port);
      await waitFor(() => tryAsk(port, ['PING']), `node ${port} to answer`, timeoutMs, 20);
      await this.#converged(this.ports.length - this.#killed.size);
    });
  }

  /** The temporary directory holding configs and logs (removed by `stop()`). */
  get dir(): string {
    return this.#procs.dir;
  }

  /** Kills every node and removes the directory. Safe to call twice. */
  stop(): Promise<void> {
    return this.#procs.stopAll();
  }
}

/** Options of {@link RedisSentinel.start}. */
export interface RedisSentinelOptions {
  /** 1 to 3 (quorum: a majority). @default 1 */
  sentinels?: number;
  /** @default 'tsmaster' */
  masterName?: string;
  /** @default 1000 */
  downAfterMs?: number;
  /** @default 3000 */
  failoverTimeoutMs?: number;
  /** @default 30000 */
  startTimeoutMs?: number;
}

/**
 * A real Sentinel deployment on loopback: a master, one replica, and 1-3 sentinels watching it,
 * persistence off, low `down-after-milliseconds` so a failover takes a second or two.
 */
export class RedisSentinel {
  readonly masterName: string;
  readonly sentinelPorts: readonly number[];
  /** The two data nodes; which of them is master changes with each failover. */
  readonly dataPorts: readonly number[];
  readonly #procs: Processes;
  readonly #downAfter: number;
  readonly #failoverTimeout: number;
  readonly #killed = new Set<number>();

  private constructor(
    procs: Processes,
    name: string,
    data: number[],
    sentinels: number[],
    downAfter: number,
    failoverTimeout: number,
  ) {
    this.#procs = procs;
    this.masterName = name;
    this.dataPorts = data;
    this.sentinelPorts = sentinels;
    this.#downAfter = downAfter;
    this.#failoverTimeout = failoverTimeout;
  }

  /** Starts master, replica and sentinels; resolves once the replica is in sync and every sentinel knows the replica and the other sentinels. */
  static async start(options: RedisSentinelOptions = {}): Promise<RedisSentinel> {
    if (skipNoSentinel) throw new Error(skipNoSentinel);
    const count = options.sentinels ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 3)
      throw new Error('RedisSentinel: sentinels must be 1 to 3');
    const name = options.masterName ?? 'tsmaster';
    const procs = new Processes('sentinel');
    try {
      const ports = await freePorts(2 + count);
      const s = new RedisSentinel(
        procs,
        name,
        ports.slice(0, 2),
        ports.slice(2),
        options.downAfterMs ?? 1_000,
        options.failoverTimeoutMs ?? 3_000,
      );
      await bounded('RedisSentinel.start', options.startTimeoutMs ?? 30_000, procs, async () => {
        const [master, replica] = s.dataPorts as [number, number];
        s.#spawnData(master, undefined);
        s.#spawnData(replica, master);
        await waitFor(
          async () => parseInfo(await tryAsk(replica, ['INFO', 'replication'])).master_link_status === 'up',
          `replica ${replica} to sync with master ${master}`,
          20_000,
          20,
        );
        for (const port of s.sentinelPorts) s.#spawnSentinel(port, master);
        await s.#sentinelsAgree(master, 20_000);
      });
      return s;
    } catch (err) {
      await procs.stopAll();
      throw err;
    }
  }

  #spawnData(port: number, replicaOf: number | undefined): void {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--repl-diskless-sync-delay', '0');
    args.push('--dir', this.#procs.dir, '--dbfilename', `dump-${port}.rdb`);
    args.push('--daemonize', 'no', '--loglevel', 'notice', '--logfile', this.#procs.logFile(port));
    if (replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(replicaOf));
    this.#procs.spawn(port, args);
  }

  #spawnSentinel(port: number, master: number): void {
    const quorum = Math.floor(this.sentinelPorts.length / 2) + 1;
    const conf = join(this.#procs.dir, `sentinel-${port}.conf`);
    const n = this.masterName;
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${this.#procs.dir}`,
        `logfile ${this.#procs.logFile(port)}`,
        `sentinel monitor ${n} 127.0.0.1 ${master} ${quorum}`,
        `sentinel down-after-milliseconds ${n} ${this.#downAfter}`,
        `sentinel failover-timeout ${n} ${this.#failoverTimeout}`,
        `sentinel parallel-syncs ${n} 1`,
        '',
      ].join('\n'),
    );
    if (sentinelPath) this.#procs.spawn(port, [conf], sentinelPath);
    else this.#procs.spawn(port, [conf, '--sentinel']);
  }

  /**
   * Every sentinel names `master` as master, lists the other live data node as a replica that is not
   * down, and knows the other sentinels; and that replica's own link to `master` is up. (The
   * sentinels' copy of a replica's link status refreshes only every 10 s, so it is asked directly.)
   */
  async #sentinelsAgree(master: number, timeoutMs: number): Promise<void> {
    const n = this.masterName;
    const replicas = this.dataPorts.filter((p) => p !== master && !this.#killed.has(p));
    await waitFor(
      async () => {
        for (const r of replicas) {
          const info = parseInfo(await tryAsk(r, ['INFO', 'replication']));
          if (info.master_port !== String(master) || info.master_link_status !== 'up') return false;
        }
        for (const sp of this.sentinelPorts) {
          const addr = (await tryAsk(sp, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', n])) as string[] | undefined;
          if (!addr || Number(addr[1]) !== master) return false;
          const reps = ((await tryAsk(sp, ['SENTINEL', 'REPLICAS', n])) ?? []) as unknown[];
          const listed = reps
            .map(pairs)
            .filter((x) => !/s_down|o_down|disconnected/.test(x.flags ?? ''))
            .map((x) => Number(x.port));
          if (!replicas.every((p) => listed.includes(p))) return false;
          const others = ((await tryAsk(sp, ['SENTINEL', 'SENTINELS', n])) ?? []) as unknown[];
          if (
            others.map(pairs).filter((o) => !/s_down/.test(o.flags ?? '')).length <
            this.sentinelPorts.length - 1
          )
            return false;
        }
        return true;
      },
      `every sentinel (${this.sentinelPorts.join(', ')}) to agree that ${master} is master with replicas ${replicas.join(', ') || 'none'}`,
      timeoutMs,
      50,
    );
  }

  /** `{ host, port }` of every sentinel, for ioredis' `sentinels` option. */
  get sentinelNodes(): Array<{ host: string; port: number }> {
    return this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** The master's port according to the first sentinel that answers. */
  async master(): Promise<number> {
    for (const sp of this.sentinelPorts) {
      const addr = (await tryAsk(sp, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.masterName])) as
        | string[]
        | undefined;
      if (addr) return Number(addr[1]);
    }
    throw new Error('RedisSentinel: no sentinel answers');
  }

  /**
   * Fails the master over to the replica: `'kill'` SIGKILLs the master (sentinels notice after
   * `downAfterMs`), `'command'` asks a sentinel (`SENTINEL FAILOVER`, the old master stays up and
   * is made a replica of the new one). Resolves once the old replica is master, every sentinel
   * says so and, for `'command'`, the old master replicates from it.
   */
  async failover(
    how: 'kill' | 'command' = 'kill',
    timeoutMs = 30_000,
  ): Promise<{ from: number; to: number; failoverMs: number }> {
    return bounded(`RedisSentinel.failover(${how})`, timeoutMs, this.#procs, async () => {
      const from = await this.master();
      const to = this.dataPorts.find((p) => p !== from)!;
      if (this.#killed.has(to)) throw new Error(`RedisSentinel: replica ${to} is down; restart() it first`);
      const t0 = Date.now();
      if (how === 'kill') {
        this.#killed.add(from);
        await this.#procs.kill(from);
      } else {
        // A replica that has just (re)synced may not be seen as a candidate yet: retry until taken.
        await waitFor(
          async () => {
            try {
              return (await ask(this.sentinelPorts[0]!, ['SENTINEL', 'FAILOVER', this.masterName])) === 'OK';
            } catch {
              return false;
            }
          },
          'SENTINEL FAILOVER to be accepted',
          timeoutMs,
          100,
        );
      }
      await waitFor(
        async () => parseInfo(await tryAsk(to, ['INFO', 'replication'])).role === 'master',
        `${to} to be promoted`,
        timeoutMs,
        25,
      );
      const failoverMs = Date.now() - t0;
      // The sentinels would turn the old master into a replica too, but only some 10 s after it
      // reports the wrong role (they wait out flapping); do now what they would do then.
      if (how === 'command') await ask(from, ['REPLICAOF', '127.0.0.1', String(to)]);
      await this.#sentinelsAgree(to, timeoutMs);
      return { from, to, failoverMs };
    });
  }

  /** Starts a killed data node again, as a replica of the current master (as the sentinels would make it). */
  async restart(port: number, timeoutMs = 30_000): Promise<void> {
    if (!this.#killed.has(port)) throw new Error(`RedisSentinel: ${port} was not killed`);
    await bounded('RedisSentinel.restart', timeoutMs, this.#procs, async () => {
      const master = await this.master();
      // Started as a replica of the current master: what the sentinels would make of it, but
      // without their 10 s wait before reconfiguring an instance that says it is master.
      this.#spawnData(port, master);
      this.#killed.delete(port);
      await waitFor(
        async () => parseInfo(await tryAsk(port, ['INFO', 'replication'])).master_link_status === 'up',
        `restarted ${port} to be made a replica of ${master} by the sentinels`,
        timeoutMs,
        50,
      );
      await this.#sentinelsAgree(master, timeoutMs);
    });
  }

  /** The temporary directory holding configs and logs (removed by `stop()`). */
  get dir(): string {
    return this.#procs.dir;
  }

  /** Kills every process and removes the directory. Safe to call twice. */
  stop(): Promise<void> {
    return this.#procs.stopAll();
  }
}
