/**
 * Test support: real redis-server processes on free ports, and polling with a deadline.
 * Not published (matches `*.test.*`), not run as a test (does not end in `.test.js`).
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';

/** Path of redis-server, or undefined when it is not installed. */
export const redisServerPath: string | undefined = (() => {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

export const skipNoRedis = redisServerPath
  ? false
  : 'redis-server is not installed (apt-get install redis-server); Redis tests skipped';

/** Resolves when `pred()` is truthy; rejects with `message` after `timeoutMs`. Polls every `everyMs`. */
export async function waitFor<T>(
  pred: () => T | Promise<T>,
  message: string,
  timeoutMs = 5000,
  everyMs = 5,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${message}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A loopback port that refuses connections (ECONNREFUSED) while it is held, and that nothing else
 * gets meanwhile: a server that is down. (A port found by listening and closing is free for
 * anyone until it is used: another process or test may be listening there by then.)
 *
 * Node cannot bind a TCP socket without listening, so the port is the local end of a connection
 * to a private listener, bound explicitly (`localAddress`) and not listening. On Linux:
 * - a connection to 127.0.0.1:port is reset: ECONNREFUSED;
 * - the kernel gives the port to nobody else: not to a `listen(0)` (an explicitly bound port is
 *   not handed out while bound) and not as the source port of a connection (explicitly bound
 *   ports are skipped), so no connection to it connects to itself;
 * - a listener on 127.0.0.2 on the same port makes binds of 0.0.0.0 and :: on it fail.
 * Only a process that picked the number itself and binds 127.0.0.1:port with SO_REUSEADDR could
 * take it. Measured on Linux 6.18: 20,000 connects refused, 20,000 `listen(0)` never given it.
 * (An implicitly bound local port, a plain `connect()`'s, cannot be bound by anyone, but
 * connections to it may be given it as their own source port and connect to themselves: 2 of
 * 40,000 connects did.)
 */
export async function refusedPort(): Promise<{ port: number; host: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const keep = (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
  };
  const peer = createServer(keep);
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  const holder = connect({
    host: '127.0.0.1',
    port: (peer.address() as AddressInfo).port,
    localAddress: '127.0.0.1',
  });
  keep(holder);
  await new Promise<void>((r) => holder.once('connect', () => r()));
  const port = holder.localPort as number;
  // nobody connects to the guard; one that did is reset
  const guard = createServer((s) => s.resetAndDestroy());
  await new Promise<void>((r) => {
    guard.once('error', () => r()); // no 127.0.0.2 here: the wildcard binds are not blocked
    guard.listen(port, '127.0.0.2', () => r());
  });
  return {
    port,
    host: `127.0.0.1:${port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([peer, guard].filter((s) => s.listening).map((s) => new Promise((r) => s.close(r))));
    },
  };
}

export function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('data', (d) => done(/^(\+PONG|-NOAUTH|-ERR)/.test(d.toString())));
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

/** A self-signed certificate for 127.0.0.1 made with openssl, or undefined when openssl is missing. */
export function selfSignedCert(): { cert: string; key: string; certPem: string } | undefined {
  try {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
      ],
      { stdio: 'ignore', input: '' },
    );
    return { cert, key, certPem: readFileSync(cert, 'utf8') };
  } catch {
    return undefined;
  }
}

function tlsAnswers(port: number, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = tlsConnect({ port, host: '127.0.0.1', ca, checkServerIdentity: () => undefined });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('secureConnect', () => done(true));
  });
}

/** A redis-server child process on its own port; `stop()` and `start()` can be repeated. */
export class RedisServer {
  readonly port: number;
  readonly password: string | undefined;
  readonly tls: { cert: string; key: string; certPem: string } | undefined;
  #proc: ChildProcess | undefined;

  private constructor(port: number, password: string | undefined, tls: RedisServer['tls']) {
    this.port = port;
    this.password = password;
    this.tls = tls;
  }

  static async start(
    opts: { password?: string; tls?: { cert: string; key: string; certPem: string } } = {},
  ): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), opts.password, opts.tls);
    await s.start();
    return s;
  }

  get url(): string {
    const scheme = this.tls ? 'rediss' : 'redis';
    return this.password
      ? `${scheme}://:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`
      : `${scheme}://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!redisServerPath) throw new Error('redis-server missing');
    const args = this.tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-cert-file', this.tls.cert]
      : ['--port', String(this.port)];
    if (this.tls) args.push('--tls-key-file', this.tls.key, '--tls-auth-clients', 'no');
    args.push('--bind', '127.0.0.1', '--save', '', '--appendonly', 'no');
    args.push('--daemonize', 'no', '--loglevel', 'warning');
    if (this.password) args.push('--requirepass', this.password);
    this.#proc = spawn(redisServerPath, args, { stdio: 'ignore' });
    const tls = this.tls;
    await waitFor(
      () => (tls ? tlsAnswers(this.port, tls.certPem) : answers(this.port)),
      `redis-server on port ${this.port} to answer`,
      5000,
      10,
    );
  }

  /** Kills the server (SIGKILL: no goodbye to clients) and waits for the port to stop answering. */
  async stop(): Promise<void> {
    const p = this.#proc;
    this.#proc = undefined;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** Pauses the server process (it accepts nothing, answers nothing) until `resume()`. */
  pause(): void {
    this.#proc?.kill('SIGSTOP');
  }

  resume(): void {
    this.#proc?.kill('SIGCONT');
  }
}

/** The CI Redis on 6379 when it answers, otherwise a server of our own. */
export async function sharedRedis(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (await answers(6379)) return { url: 'redis://127.0.0.1:6379', stop: async () => {} };
  const s = await RedisServer.start();
  return { url: s.url, stop: () => s.stop() };
}

/** Deletes the keys this test process made on a shared server (prefixes from {@link uniquePrefix}). */
export async function removeTestKeys(url: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
  let removed = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `tstest-*-${process.pid}-*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) removed += await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return removed;
}

/** A prefix no other test run uses, so tests sharing a server do not see each other's keys. */
export function uniquePrefix(tag: string): string {
  return `tstest-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
