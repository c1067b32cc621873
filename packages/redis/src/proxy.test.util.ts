/**
 * Test support: a TCP proxy to Redis that reorders what a store sees across its two connections.
 * Each connection through it is a {@link Link}: its replies (or, on the subscriber, its messages)
 * can be held and released one RESP frame at a time, or delayed by an amount the test draws, so a
 * message published before a command ran can reach the store after that command's reply (as two
 * TCP connections allow). Order within one connection is always kept. Not published, not a test.
 * @module
 */
import { type Server, type Socket, connect, createServer } from 'node:net';

/** Length of the first complete RESP2 frame in `b` from `at`, or -1 when it is incomplete. */
function frameEnd(b: Buffer, at: number): number {
  if (at >= b.length) return -1;
  const eol = b.indexOf('\r\n', at);
  if (eol < 0) return -1;
  const type = String.fromCharCode(b[at] as number);
  if (type === '+' || type === '-' || type === ':') return eol + 2;
  const n = Number(b.subarray(at + 1, eol).toString());
  if (type === '$') {
    if (n < 0) return eol + 2;
    const end = eol + 2 + n + 2;
    return end <= b.length ? end : -1;
  }
  if (type === '*') {
    let p = eol + 2;
    for (let i = 0; i < n; i++) {
      p = frameEnd(b, p);
      if (p < 0) return -1;
    }
    return p;
  }
  throw new Error(`proxy: unexpected RESP type ${type}`);
}

/** One client connection through the proxy. */
export class Link {
  /** It sent SUBSCRIBE: what comes back is pub/sub messages. */
  subscriber = false;
  #held = false;
  #frames: Buffer[] = [];
  #partial: Buffer = Buffer.alloc(0);
  #writing: Promise<void> = Promise.resolve();
  constructor(
    readonly client: Socket,
    readonly delayMs: (link: Link) => number,
  ) {}

  /** Frames from Redis: queued while held, else passed on after the link's delay (order kept). */
  fromRedis(d: Buffer): void {
    let b = Buffer.concat([this.#partial, d]);
    for (;;) {
      const end = frameEnd(b, 0);
      if (end < 0) break;
      this.#frames.push(b.subarray(0, end));
      b = b.subarray(end);
    }
    this.#partial = b;
    this.#flush();
  }

  /** Stops passing frames from Redis on until {@link release}. */
  hold(): void {
    this.#held = true;
  }

  /** Frames held, not yet passed on. */
  get held(): number {
    return this.#held ? this.#frames.length : 0;
  }

  /** Passes on the next `n` held frames (all of them when omitted) and stops holding when none is left. */
  release(n = Number.POSITIVE_INFINITY): void {
    for (let i = 0; i < n && this.#frames.length > 0; i++) this.#send(this.#frames.shift() as Buffer);
    if (n === Number.POSITIVE_INFINITY) this.#held = false;
  }

  #flush(): void {
    if (this.#held) return;
    for (const f of this.#frames.splice(0)) this.#send(f);
  }

  #send(f: Buffer): void {
    const ms = this.#held ? 0 : this.delayMs(this);
    // chained: a frame never overtakes the one before it on the same connection
    this.#writing = this.#writing.then(
      () =>
        new Promise<void>((r) => {
          if (ms <= 0) {
            if (!this.client.destroyed) this.client.write(f);
            r();
            return;
          }
          setTimeout(() => {
            if (!this.client.destroyed) this.client.write(f);
            r();
          }, ms);
        }),
    );
  }
}

export interface ReorderingProxy {
  readonly port: number;
  readonly url: string;
  /** Connections made so far, in order. */
  readonly links: Link[];
  close(): Promise<void>;
}

/**
 * A proxy to Redis on 127.0.0.1:`upstreamPort`. `delayMs(link)` is drawn per frame Redis sends
 * back (0 when omitted); frames of a held link wait for {@link Link.release}.
 */
export async function reorderingProxy(
  upstreamPort: number,
  delayMs: (link: Link) => number = () => 0,
): Promise<ReorderingProxy> {
  const sockets = new Set<Socket>();
  const links: Link[] = [];
  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect({ port: upstreamPort, host: '127.0.0.1' });
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const link = new Link(client, delayMs);
    links.push(link);
    client.on('data', (d: Buffer) => {
      if (!link.subscriber && /subscribe/i.test(d.toString('latin1'))) link.subscriber = true;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => link.fromRedis(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    links,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
