/**
 * Test helpers (real sockets on 127.0.0.1, port 0). Not exported from the package.
 * @module
 */
import {
  type ClientRequest,
  createServer,
  type IncomingMessage,
  type RequestOptions,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Clock } from 'tripswitch';
import { defaultHttpServer } from '../config/resolve.js';
import type { ClusterConfig, RouteConfig, SidecarConfig } from '../config/schema.js';
import { type Logger, Sidecar } from './server.js';

/** A logger that keeps lines for assertions. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const f = (msg: string, fields?: Record<string, unknown>) => {
    lines.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  };
  return { lines, info: f, warn: f, error: f };
}

/** An upstream server on 127.0.0.1:0. */
export async function upstream(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; host: string; hits: number; close(): Promise<void> }> {
  const u = {
    server: undefined as unknown as Server,
    port: 0,
    host: '',
    hits: 0,
    close: () =>
      new Promise<void>((resolve) => {
        u.server.close(() => resolve());
        u.server.closeAllConnections();
      }),
  };
  u.server = createServer((req, res) => {
    u.hits++;
    handler(req, res);
  });
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
  u.port = (u.server.address() as AddressInfo).port;
  u.host = `127.0.0.1:${u.port}`;
  return u;
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
  const peer = createNetServer(keep);
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
  const guard = createNetServer((s) => s.resetAndDestroy());
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

/**
 * The `http_server` a plain-HTTP listener of the test helpers gets when it does not name one: env
 * TRIPSWITCH_TEST_HTTP_SERVER (`node` or `own`; read by the test helpers only, never by the
 * product), else the product's default (`own`, or `node` on a Node without what own needs), so a
 * whole test file or suite runs with either (the `*-node.test.ts` files re-run server, hardening
 * and fuzz tests with `node`).
 */
export function testHttpServer(): 'node' | 'own' {
  const v = process.env.TRIPSWITCH_TEST_HTTP_SERVER;
  if (v === undefined || v === '') return defaultHttpServer({ port: 0, routes: [] });
  if (v !== 'node' && v !== 'own') throw new Error(`TRIPSWITCH_TEST_HTTP_SERVER=${v}: node or own`);
  return v;
}

/**
 * `config` with TRIPSWITCH_TEST_HTTP_SERVER (see {@link testHttpServer}) on its plain-HTTP
 * listeners that do not name one; unset, the config is left as it is (the default applies).
 */
export function withTestHttpServer(config: SidecarConfig): SidecarConfig {
  const hs = process.env.TRIPSWITCH_TEST_HTTP_SERVER;
  if (hs === undefined || hs === '') return config;
  const server = testHttpServer();
  return {
    ...config,
    listeners: config.listeners.map((l) =>
      l.tls || l.http_server !== undefined ? l : { ...l, http_server: server },
    ),
  };
}

/** Starts a sidecar with one listener on port 0. */
export async function proxy(
  clusters: ClusterConfig[],
  routes: RouteConfig[],
  opts: { clock?: Clock; extra?: Partial<SidecarConfig> } = {},
): Promise<{
  sidecar: Sidecar;
  port: number;
  config: SidecarConfig;
  logger: ReturnType<typeof memoryLogger>;
}> {
  const config = withTestHttpServer({ listeners: [{ port: 0, routes }], clusters, ...opts.extra });
  const logger = memoryLogger();
  const sidecar = new Sidecar(config, { logger, ...(opts.clock ? { clock: opts.clock } : {}) });
  await sidecar.start();
  return { sidecar, port: sidecar.addresses()[0]!.port, config, logger };
}

/** The response of {@link send}. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP request on a fresh connection; rejects after `timeoutMs`. */
export function send(
  port: number,
  path: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    timeoutMs?: number;
  } = {},
): Promise<Reply> {
  return exchange(
    { host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: init.headers, agent: false },
    init.timeoutMs,
    (req) => req.end(init.body),
  );
}

/** One client request: `write` sends the body; resolves with the whole reply. */
function exchange(
  options: RequestOptions,
  timeoutMs: number | undefined,
  write: (req: ClientRequest) => void,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs ?? 10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    write(req);
  });
}

/**
 * One request whose body is written as separate pieces with no Content-Length, so that node's
 * client sends it with Transfer-Encoding: chunked (one chunk per piece).
 */
export function sendChunked(
  port: number,
  path: string,
  init: { method?: string; pieces: Buffer[]; timeoutMs?: number },
): Promise<Reply> {
  return exchange(
    { host: '127.0.0.1', port, path, method: init.method ?? 'PUT', agent: false },
    init.timeoutMs,
    (req) => {
      for (const p of init.pieces) req.write(p);
      req.end();
    },
  );
}

/** Writes raw bytes and returns everything read until the server closes (or `timeoutMs`). */
export function raw(
  port: number,
  text: string,
  timeoutMs = 3000,
): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ data, closed: false });
    }, timeoutMs);
    s.on('data', (c) => {
      data += c.toString('latin1');
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
    s.on('error', () => {});
    s.write(text);
  });
}

/** Resolves when `cond()` holds, polling every 5 ms, rejecting after `ms`. */
export async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** PEM files of a test PKI: paths, and the contents for clients. */
export interface TestCerts {
  dir: string;
  /** The private CA (certificate only; its key stays in `dir`). */
  ca: string;
  caPem: string;
  /** Server certificate for IP 127.0.0.1, DNS localhost and upstream.test, signed by the CA. */
  server: { cert: string; key: string };
  /** A second server certificate with the same names (for reload), signed by the CA. */
  server2: { cert: string; key: string };
  /** Client certificate (CN test-client), signed by the CA. */
  client: { cert: string; key: string; certPem: string; keyPem: string };
}

let certs: TestCerts | false | undefined;

/**
 * A private CA with server and client certificates, made once per process with the openssl CLI
 * (EC P-256, valid two days). Undefined when openssl is not installed or fails.
 */
export function testCerts(): TestCerts | undefined {
  if (certs !== undefined) return certs || undefined;
  try {
    const dir = mkdtempSync(join(tmpdir(), 'tripswitch-sidecar-tls-'));
    const f = (name: string) => join(dir, name);
    writeFileSync(
      f('openssl.cnf'),
      [
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = unused',
        '[ca]',
        'basicConstraints = critical,CA:TRUE',
        'keyUsage = critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier = hash',
        '[server]',
        'basicConstraints = CA:FALSE',
        'subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:upstream.test',
        'extendedKeyUsage = serverAuth',
        '[client]',
        'basicConstraints = CA:FALSE',
        'extendedKeyUsage = clientAuth',
        '',
      ].join('\n'),
    );
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', input: '' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl(
      'req',
      '-x509',
      '-config',
      f('openssl.cnf'),
      '-extensions',
      'ca',
      ...ec,
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-days',
      '2',
      '-subj',
      '/CN=tripswitch test CA',
    );
    let serial = 1;
    const leaf = (name: string, cn: string, ext: string) => {
      ssl(
        'req',
        '-new',
        '-config',
        f('openssl.cnf'),
        ...ec,
        '-keyout',
        f(`${name}.key`),
        '-out',
        f(`${name}.csr`),
        '-subj',
        `/CN=${cn}`,
      );
      ssl(
        'x509',
        '-req',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-set_serial',
        String(++serial),
        '-days',
        '2',
        '-extfile',
        f('openssl.cnf'),
        '-extensions',
        ext,
        '-out',
        f(`${name}.pem`),
      );
      return { cert: f(`${name}.pem`), key: f(`${name}.key`) };
    };
    const server = leaf('server', 'upstream.test', 'server');
    const server2 = leaf('server2', 'upstream.test', 'server');
    const client = leaf('client', 'test-client', 'client');
    certs = {
      dir,
      ca: f('ca.pem'),
      caPem: readFileSync(f('ca.pem'), 'utf8'),
      server,
      server2,
      client: {
        ...client,
        certPem: readFileSync(client.cert, 'utf8'),
        keyPem: readFileSync(client.key, 'utf8'),
      },
    };
  } catch {
    certs = false;
  }
  return certs || undefined;
}
