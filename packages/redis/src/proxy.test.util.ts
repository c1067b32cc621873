/**
 * Test support: a TCP proxy to Redis that reorders what a store sees across its two connections.
 * Each connection through it is a {@link Link}: its replies (or, on the subscriber, its messages)
 * can be held and released a number of RESP frames at a time, so a message published before a
 * command ran can reach the store after that command's reply (as two TCP connections allow).
 * Order within one connection is always kept; commands reach Redis at once. Not published, not a
 * test.
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
  constructor(readonly client: Socket) {}

  /** Frames from Redis: queued while held, else passed on. */
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
    if (!this.client.destroyed) this.client.write(f);
  }
}

export interface ReorderingProxy {
  readonly port: number;
  readonly url: string;
  /** Connections made so far, in order. */
  readonly links: Link[];
  /** New connections start held (see {@link Link.hold}). */
  holdNew: boolean;
  close(): Promise<void>;
}

/**
 * A proxy to Redis on 127.0.0.1:`upstreamPort`. Frames of a held link wait for
 * {@link Link.release}; with `holdNew`, every connection starts held.
 */
export async function reorderingProxy(
  upstreamPort: number,
  opts: { holdNew?: boolean } = {},
): Promise<ReorderingProxy> {
  const sockets = new Set<Socket>();
  const links: Link[] = [];
  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = connect({ port: upstreamPort, host: '127.0.0.1' });
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    const link = new Link(client);
    if (proxy.holdNew) link.hold();
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
  const proxy: ReorderingProxy = {
    port: 0,
    url: '',
    links,
    holdNew: opts.holdNew ?? false,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return Object.assign(proxy, { port, url: `redis://127.0.0.1:${port}` });
}
