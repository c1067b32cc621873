/**
 * Listeners: an HTTP or HTTPS server per `listeners[]` entry with the parser limits, connection
 * timeouts and the handling of what never reaches a request handler (malformed heads, unmet
 * Expect, CONNECT), and their changes on reload (routes, TLS context, limits).
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ResolvedListener } from '../config/resolve.js';
import type { TlsMaterial } from '../config/tls.js';
import { answerClientError, refuse } from './head.js';
import { rawReply } from './http.js';
import { ownServerProblem } from './llhttp.js';
import type { Logger } from './logger.js';
import { OwnServer } from './own-server.js';
import type { CompiledRoute } from './route.js';

/** A bound listener and what its requests read (swapped on reload). */
export interface ListenerSlot {
  key: string;
  config: ResolvedListener;
  server: Server | HttpsServer;
  /** The TLS files in force (HTTPS listeners). */
  tls: TlsMaterial | undefined;
  routes: CompiledRoute[];
  priorityHeader: string;
  maxHeadersCount: number;
  /** `http_server: own` (plain HTTP only): the connections read by `own-server.ts`. */
  own?: OwnServer;
}

/** Where a listener hands its requests and upgrades. */
export interface ListenerHandlers {
  request(slot: ListenerSlot, req: IncomingMessage, res: ServerResponse): void;
  upgrade(slot: ListenerSlot, req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A request read by the own server (served at once: it serialises its connection). */
  serve(slot: ListenerSlot, req: IncomingMessage, res: ServerResponse): void;
}

/**
 * The listener's limits on a client connection, set as properties so that a reload changes them
 * for new requests: Node enforces headersTimeout/requestTimeout on a timer every
 * connectionsCheckingInterval (fixed when the server is made), and reads maxHeadersCount when a
 * connection's parser is set up (one more than the limit, so that the excess is seen and refused).
 */
function applyConnectionLimits(server: Server | HttpsServer, l: ResolvedListener): void {
  const request = l.request_timeout_ms;
  const headers = l.headers_timeout_ms;
  server.requestTimeout = request;
  server.headersTimeout = request > 0 ? Math.min(headers, request) : headers;
  server.keepAliveTimeout = l.idle_timeout_ms;
  server.maxHeadersCount = l.max_headers_count + 1;
}

/** How often Node looks for connections past their header or request timeout. */
function checkingInterval(l: ResolvedListener): number {
  return Math.max(10, Math.min(1000, Math.floor(l.headers_timeout_ms / 4)));
}

/** The secure context options of an HTTPS listener (node's `tls.createServer()` names). */
function secureOptions(l: ResolvedListener, tls: TlsMaterial) {
  const mtls = l.tls?.request_client_cert === true;
  return {
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca ? { ca: tls.ca } : {}),
    requestCert: mtls,
    rejectUnauthorized: mtls,
  };
}

/** Binds a listener (not yet registered); rejects on a listen error. */
export async function openListener(
  l: ResolvedListener,
  routes: CompiledRoute[],
  tls: TlsMaterial | undefined,
  handlers: ListenerHandlers,
  logger: Logger,
  bind: { reusePort?: boolean; port?: number } = {},
): Promise<ListenerSlot> {
  // A config from the YAML never gets here with this (parseConfig refuses it at the field, and a
  // listener that does not name http_server resolves to node): this is for a config built in code.
  const ownProblem = l.http_server === 'own' && !tls ? ownServerProblem() : undefined;
  if (ownProblem !== undefined)
    throw new Error(`listener ${l.name ?? l.key}: http_server: own cannot run on this Node: ${ownProblem}`);
  // HTTP and HTTPS listeners share the parser options and the clientError handling below.
  // Host is checked by the request handler (checkHead), where a refusal also ends the connection.
  const http = {
    maxHeaderSize: l.max_header_bytes,
    requireHostHeader: false,
    connectionsCheckingInterval: checkingInterval(l),
  };
  const handler = (req: IncomingMessage, res: ServerResponse) => handlers.request(slot, req, res);
  const slot: ListenerSlot = {
    key: l.key,
    config: l,
    tls,
    routes,
    priorityHeader: l.priority_header,
    maxHeadersCount: l.max_headers_count,
    server: tls
      ? createHttpsServer({ ...http, ...secureOptions(l, tls) }, handler)
      : createServer(http, handler),
  };
  applyConnectionLimits(slot.server, l);
  if (l.http_server === 'own' && !tls)
    slot.own = new OwnServer(slot.server as Server, {
      config: () => slot.config,
      serve: (req, res) => handlers.serve(slot, req, res),
    });
  // Node answers an unmet Expect with 417 but keeps reading the connection: refuse instead.
  slot.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    refuse(req, res, 417, 'only Expect: 100-continue is supported'),
  );
  slot.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handlers.upgrade(slot, req, socket, head),
  );
  slot.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    rawReply(socket, 501, 'CONNECT is not supported: this is a reverse proxy, not a forward proxy\n');
  });
  // Headers too large (in bytes, or in count where the parser limits it, as Node 22+ does) are 431,
  // a timeout 408, anything else malformed 400; the connection always closes (a desynchronised
  // parser must not read another request).
  slot.server.on('clientError', answerClientError);
  await new Promise<void>((resolve, reject) => {
    slot.server.once('error', reject);
    // workers: N: every worker binds the port with SO_REUSEPORT and the kernel spreads the
    // connections; the first worker resolves port 0 and the others are given its port.
    const port = bind.port ?? l.port;
    const done = () => {
      slot.server.off('error', reject);
      resolve();
    };
    if (bind.reusePort) slot.server.listen({ port, host: l.address, reusePort: true }, done);
    else slot.server.listen(port, l.address, done);
  });
  const a = slot.server.address() as AddressInfo;
  logger.info('listening', { listener: l.name ?? l.key, address: `${a.address}:${a.port}` });
  return slot;
}

/**
 * A listener that cannot change in place on reload: HTTP and HTTPS, or asking for client
 * certificates, cannot be switched on a bound server. Returns the message, or undefined.
 */
export function needsRestart(slot: ListenerSlot, l: ResolvedListener): string | undefined {
  const was = slot.config.tls;
  if (!was !== !l.tls || (was?.request_client_cert === true) !== (l.tls?.request_client_cert === true))
    return `listener ${l.name ?? slot.key}: turning tls or request_client_cert on or off needs a restart (or a new port)`;
  if (slot.config.http_server !== l.http_server)
    return `listener ${l.name ?? slot.key}: changing http_server needs a restart (or a new port)`;
  return undefined;
}

/** Applies a reloaded listener entry to its bound server: routes, limits, and a new TLS context. */
export function updateListener(
  slot: ListenerSlot,
  l: ResolvedListener,
  routes: CompiledRoute[],
  tls: TlsMaterial | undefined,
  logger: Logger,
): void {
  slot.routes = routes;
  if (tls && tls.digest !== slot.tls?.digest) {
    // New handshakes use the new certificate; open connections keep theirs.
    (slot.server as HttpsServer).setSecureContext(secureOptions(l, tls));
    logger.info('listener tls reloaded', { listener: l.name ?? l.key });
  }
  slot.tls = tls;
  slot.config = l;
  slot.priorityHeader = l.priority_header;
  slot.maxHeadersCount = l.max_headers_count;
  applyConnectionLimits(slot.server, l);
}
