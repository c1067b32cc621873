/**
 * Test support: real redis-server processes on free ports, and polling with a deadline.
 * Not published (matches `*.test.*`), not run as a test (does not end in `.test.js`).
 * @module
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

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

/** A redis-server child process on its own port; `stop()` and `start()` can be repeated. */
export class RedisServer {
  readonly port: number;
  readonly password: string | undefined;
  #proc: ChildProcess | undefined;

  private constructor(port: number, password: string | undefined) {
    this.port = port;
    this.password = password;
  }

  static async start(opts: { password?: string } = {}): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), opts.password);
    await s.start();
    return s;
  }

  get url(): string {
    return this.password
      ? `redis://:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}`
      : `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (!redisServerPath) throw new Error('redis-server missing');
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    args.push('--daemonize', 'no', '--loglevel', 'warning');
    if (this.password) args.push('--requirepass', this.password);
    this.#proc = spawn(redisServerPath, args, { stdio: 'ignore' });
    await waitFor(() => answers(this.port), `redis-server on port ${this.port} to answer`, 5000, 10);
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

/** A prefix no other test run uses, so tests sharing a server do not see each other's keys. */
export function uniquePrefix(tag: string): string {
  return `tstest-${tag}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}
