import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { isConfigError, loadConfig } from '../config/load.js';
import type { ClusterConfig, ListenerTlsConfig, SidecarConfig } from '../config/schema.js';
import { Sidecar } from './server.js';
import { memoryLogger, proxy, type Reply, send, testCerts, upstream, until } from './test-helpers.js';

const certs = testCerts();
const skip = certs ? false : 'openssl is not installed (or failed): no test certificates';
if (!certs) process.stderr.write('tls tests skipped: openssl is not installed (or failed)\n');

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface TlsUpstream {
  port: number;
  hits: number;
  /** SNI of each connection (false when none was sent). */
  servernames: (string | false)[];
  /** Client certificate subjects CN seen, per request. */
  clientCNs: (string | undefined)[];
}

/** An HTTPS upstream on 127.0.0.1:0 with the CA-signed server certificate. */
async function tlsUpstream(
  extra: ServerOptions = {},
  handler: (req: IncomingMessage, res: ServerResponse) => void = (req, res) =>
    res.end(`tls ok ${req.headers['x-forwarded-proto']}`),
): Promise<TlsUpstream> {
  const c = certs!;
  const u: TlsUpstream = { port: 0, hits: 0, servernames: [], clientCNs: [] };
  const server = createHttpsServer(
    { cert: readFileSync(c.server.cert), key: readFileSync(c.server.key), ...extra },
    (req, res) => {
      u.hits++;
      const sock = req.socket as TLSSocket;
      const peer = sock.getPeerCertificate() as PeerCertificate | Record<string, never>;
      u.clientCNs.push('subject' in peer && peer.subject ? String(peer.subject.CN) : undefined);
      handler(req, res);
    },
  );
  server.on('secureConnection', (s: TLSSocket) =>
    u.servernames.push((s as { servername?: string | false }).servername ?? false),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return u;
}

async function through(cluster: ClusterConfig, path = '/x', headers?: Record<string, string>) {
  const p = await proxy([cluster], [{ prefix: '/', cluster: cluster.name }]);
  cleanups.push(() => p.sidecar.shutdown(1000));
  const r = await send(p.port, path, headers ? { headers } : {});
  return { r, counters: p.sidecar.clusters.get(cluster.name)!.counters };
}

/** One HTTPS request to the proxy, trusting the test CA. */
function sendTls(
  port: number,
  path: string,
  opts: { cert?: string; key?: string; agent?: false } = {},
): Promise<Reply & { peer: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        ca: certs!.caPem,
        agent: false,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), peer }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Writes raw bytes over TLS and returns everything read until the server closes. */
function rawTls(port: number, text: string): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ port, host: '127.0.0.1', ca: certs!.caPem });
    let data = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ data, closed: false });
    }, 3000);
    s.on('data', (c: Buffer) => {
      data += c.toString('latin1');
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
    s.on('error', () => {});
    s.once('secureConnect', () => s.write(text));
  });
}

async function httpsProxy(tls: ListenerTlsConfig, hosts: string[]) {
  const config: SidecarConfig = {
    listeners: [{ port: 0, tls, routes: [{ prefix: '/', cluster: 'u' }] }],
    clusters: [{ name: 'u', hosts }],
  };
  const sidecar = new Sidecar(config, { logger: memoryLogger() });
  await sidecar.start();
  cleanups.push(() => sidecar.shutdown(1000));
  return { sidecar, port: sidecar.addresses()[0]!.port };
}

describe('upstream TLS', { skip }, () => {
  test('a private CA: ca_file succeeds; without it the handshake fails (502, a connect failure)', async () => {
    const u = await tlsUpstream();
    const host = `https://127.0.0.1:${u.port}`;
    const ok = await through({ name: 'pca', hosts: [host], tls: { ca_file: certs!.ca } });
    assert.equal(ok.r.status, 200);
    assert.equal(ok.r.body.toString(), 'tls ok http');
    // No SNI for an IP host, whatever Host header the client sent.
    assert.deepEqual(u.servernames, [false]);

    const bad = await through({ name: 'nca', hosts: [host] });
    assert.equal(bad.r.status, 502);
    assert.equal(bad.r.headers['x-tripswitch-upstream-error'], 'tls');
    assert.equal(bad.counters.connectFailures, 1);
    assert.equal(bad.counters.resets, 0);
    assert.equal(u.hits, 1, 'the failed handshake sent no request');
  });

  test('servername: SNI and the certificate name; a name the certificate lacks fails', async () => {
    const u = await tlsUpstream();
    const host = `https://127.0.0.1:${u.port}`;
    const ok = await through(
      { name: 'sni', hosts: [host], tls: { ca_file: certs!.ca, servername: 'upstream.test' } },
      '/x',
      { host: 'client-facing.example' },
    );
    assert.equal(ok.r.status, 200);
    assert.deepEqual(u.servernames, ['upstream.test']);

    const bad = await through({
      name: 'wrong',
      hosts: [host],
      tls: { ca_file: certs!.ca, servername: 'wrong.test' },
    });
    assert.equal(bad.r.status, 502);
    assert.equal(bad.r.headers['x-tripswitch-upstream-error'], 'tls');
    assert.equal(bad.counters.connectFailures, 1);
    assert.equal(u.hits, 1);
  });

  test('reject_unauthorized: false accepts an untrusted certificate (tests only)', async () => {
    const u = await tlsUpstream();
    const r = await through({
      name: 'insecure',
      hosts: [`https://127.0.0.1:${u.port}`],
      tls: { reject_unauthorized: false, servername: 'wrong.test' },
    });
    assert.equal(r.r.status, 200);
  });

  test('mTLS upstream: cert_file + key_file are presented; without them the request fails', async () => {
    const u = await tlsUpstream({ ca: certs!.caPem, requestCert: true, rejectUnauthorized: true });
    const host = `https://127.0.0.1:${u.port}`;
    const ok = await through({
      name: 'mtls',
      hosts: [host],
      tls: { ca_file: certs!.ca, cert_file: certs!.client.cert, key_file: certs!.client.key },
    });
    assert.equal(ok.r.status, 200);
    assert.deepEqual(u.clientCNs, ['test-client']);

    const bad = await through({ name: 'nocert', hosts: [host], tls: { ca_file: certs!.ca } });
    assert.equal(bad.r.status, 502);
    // TLS 1.3: the client's side of the handshake completes before the server checks for a
    // certificate; the server's alert then arrives as a closed connection, which undici reports
    // as "other side closed": a reset.
    assert.equal(bad.counters.connectFailures + bad.counters.resets, 1);
    assert.equal(u.hits, 1, 'the upstream never saw a request without a certificate');
  });

  test('a TLS failure is retried as connect-failure, on another host', async () => {
    // The CA's own certificate names no upstream.test: that host fails the name check.
    const bad = await tlsUpstream({
      cert: readFileSync(certs!.ca),
      key: readFileSync(join(certs!.dir, 'ca.key')),
    });
    const good = await tlsUpstream();
    const p = await proxy(
      [
        {
          name: 'r',
          hosts: [`https://127.0.0.1:${bad.port}`, `https://127.0.0.1:${good.port}`],
          tls: { ca_file: certs!.ca, servername: 'upstream.test' },
        },
      ],
      [
        {
          prefix: '/',
          cluster: 'r',
          retry: { attempts: 1, retry_on: ['connect-failure'], backoff_base_ms: 0 },
        },
      ],
    );
    cleanups.push(() => p.sidecar.shutdown(1000));
    for (let i = 0; i < 2; i++) assert.equal((await send(p.port, '/')).status, 200);
    const c = p.sidecar.clusters.get('r')!.counters;
    assert.ok(c.retries >= 1);
    assert.equal(c.connectFailures, c.retries);
    assert.equal(bad.hits, 0);
  });
});

describe('HTTPS listener', { skip }, () => {
  test('serves a request end to end; X-Forwarded-Proto is https', async () => {
    const u = await upstream((req, res) => res.end(`proto=${req.headers['x-forwarded-proto']}`));
    cleanups.push(u.close);
    const p = await httpsProxy({ cert_file: certs!.server.cert, key_file: certs!.server.key }, [u.host]);
    const r = await sendTls(p.port, '/hello');
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'proto=https');
    assert.equal(r.peer.subject.CN, 'upstream.test');
  });

  for (const [name, text] of [
    [
      'Content-Length with Transfer-Encoding',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    ['oversized headers', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
  ] as const) {
    test(`over TLS: ${name} -> ${name === 'oversized headers' ? 431 : 400} and close, nothing sent upstream`, async () => {
      const u = await upstream((_req, res) => res.end('reached'));
      cleanups.push(u.close);
      const p = await httpsProxy({ cert_file: certs!.server.cert, key_file: certs!.server.key }, [u.host]);
      const r = await rawTls(p.port, text);
      // Too-large headers are 431 (RFC 6585), as Envoy answers; every other malformed head is 400.
      assert.match(r.data, name === 'oversized headers' ? /^HTTP\/1\.1 431 / : /^HTTP\/1\.1 400 /);
      assert.ok(r.closed, 'connection closed');
      assert.equal(u.hits, 0);
    });
  }

  test('request_client_cert: a client without a certificate is refused, one with it is served', async () => {
    const u = await upstream((_req, res) => res.end('in'));
    cleanups.push(u.close);
    const p = await httpsProxy(
      {
        cert_file: certs!.server.cert,
        key_file: certs!.server.key,
        ca_file: certs!.ca,
        request_client_cert: true,
      },
      [u.host],
    );
    await assert.rejects(sendTls(p.port, '/'));
    assert.equal(u.hits, 0);
    const r = await sendTls(p.port, '/', { cert: certs!.client.certPem, key: certs!.client.keyPem });
    assert.equal(r.status, 200);
    assert.equal(u.hits, 1);
  });

  test('reload with new certificate files: new handshakes get them, in-flight requests finish', async () => {
    const held: ServerResponse[] = [];
    const u = await upstream((_req, res) => held.push(res));
    cleanups.push(u.close);
    const listener = (cert: { cert: string; key: string }): SidecarConfig => ({
      listeners: [{ port: 0, tls: { cert_file: cert.cert, key_file: cert.key }, routes: [{ cluster: 'u' }] }],
      clusters: [{ name: 'u', hosts: [u.host] }],
    });
    const logger = memoryLogger();
    const sidecar = new Sidecar(listener(certs!.server), { logger });
    await sidecar.start();
    cleanups.push(() => sidecar.shutdown(1000));
    const port = sidecar.addresses()[0]!.port;
    const inflight = sendTls(port, '/slow');
    await until(() => held.length === 1);
    const before = inflight.then((r) => r.peer.serialNumber);
    await sidecar.reload(listener(certs!.server2));
    assert.ok(logger.lines.some((l) => l.startsWith('listener tls reloaded')));
    held[0]!.end('old');
    const r1 = await inflight;
    assert.equal(r1.body.toString(), 'old');
    const oldSerial = await before;
    const next = sendTls(port, '/new');
    await until(() => held.length === 2);
    held[1]!.end('new');
    const r2 = await next;
    assert.equal(r2.body.toString(), 'new');
    assert.notEqual(r2.peer.serialNumber, oldSerial);
    // Switching TLS off on a bound port is refused and changes nothing.
    await assert.rejects(
      sidecar.reload({
        listeners: [{ port: 0, routes: [{ cluster: 'u' }] }],
        clusters: [{ name: 'u', hosts: [u.host] }],
      }),
      /needs a restart/,
    );
    assert.ok(sidecar.config.listeners[0]!.tls);
  });
});

describe('tls files in a config file', { skip }, () => {
  test('relative paths start from the config directory; a reload reads them again', async () => {
    const dir = mkdtempSync(join(certs!.dir, 'cfg-'));
    copyFileSync(certs!.ca, join(dir, 'ca.pem'));
    const u = await tlsUpstream();
    const file = join(dir, 'tripswitch.yaml');
    writeFileSync(
      file,
      [
        'listeners: [{ port: 0, routes: [{ cluster: u }] }]',
        'clusters:',
        '  - name: u',
        `    hosts: [https://127.0.0.1:${u.port}]`,
        '    tls: { ca_file: ca.pem }',
      ].join('\n'),
    );
    const sidecar = new Sidecar(loadConfig(file), { logger: memoryLogger() });
    await sidecar.start();
    cleanups.push(() => sidecar.shutdown(1000));
    const port = sidecar.addresses()[0]!.port;
    assert.equal((await send(port, '/')).status, 200);
    // The file now holds a CA that did not sign the upstream: a reload makes new pools with it.
    copyFileSync(certs!.client.cert, join(dir, 'ca.pem'));
    await sidecar.reload(loadConfig(file));
    const r = await send(port, '/');
    assert.equal(r.status, 502);
    assert.equal(r.headers['x-tripswitch-upstream-error'], 'tls');
    // A missing file fails the load (the CLI then keeps the running config, as for any bad file).
    rmSync(join(dir, 'ca.pem'));
    assert.throws(
      () => loadConfig(file),
      (err: unknown) =>
        isConfigError(err) &&
        err.problems[0]!.path === '/clusters/0/tls/ca_file' &&
        err.problems[0]!.line === 5 &&
        err.problems[0]!.message.includes(join(dir, 'ca.pem')),
    );
  });
});
