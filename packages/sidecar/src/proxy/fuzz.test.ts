/**
 * Seeded fuzzing of the proxy's request path over raw sockets (issue 12). Each case is a mutated
 * request (fuzz-test-helpers.ts) followed by a valid pipelined one, on its own connection.
 * Invariants: the mutated message is either refused (4xx, connection closed, nothing after it
 * forwarded) or forwarded exactly once with the same method, target and body bytes; after a
 * response that closes the connection (HTTP/1.0, Connection: close, or an HTTP/1.0 keep-alive
 * answer the upstream sent without a length) nothing is forwarded or answered; nothing else
 * reaches the upstream; no breaker or host records a failure (the upstream never fails); in-flight,
 * pending and limit counters return to 0; the process does not crash.
 *
 * A second, smaller run sends the first cases of the same base through an HTTPS listener
 * (SIDECAR_FUZZ_TLS_CASES, default 600, none started after SIDECAR_FUZZ_TLS_BUDGET_MS, 2.5 s).
 *
 * Every run prints its base seed. Re-run a run: SIDECAR_FUZZ_BASE=<base> [SIDECAR_FUZZ_CASES=<n>];
 * one case: SIDECAR_FUZZ_SEED=<seed> (prints its bytes and what came back). Under CI the base is
 * fixed, so a verdict there is reproducible and a commit cannot fail on cases it never changed;
 * elsewhere every run explores a new base.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { RouteConfig } from '../config/schema.js';
import { type FuzzCase, fuzzCase, parseResponses, type RawResponse } from './fuzz-test-helpers.js';
import { proxy, testCerts, until } from './test-helpers.js';

const env = process.env;
const single = env.SIDECAR_FUZZ_SEED !== undefined ? Number(env.SIDECAR_FUZZ_SEED) : undefined;
const CI_BASE = 20_261_201;
const base = Number(
  env.SIDECAR_FUZZ_BASE ?? (env.CI === 'true' ? CI_BASE : Math.floor(Math.random() * 2 ** 31)),
);
const CASES = single !== undefined ? 1 : Number(env.SIDECAR_FUZZ_CASES ?? 3000);
const CONCURRENCY = Number(env.SIDECAR_FUZZ_CONCURRENCY ?? 24);
/**
 * No new case starts after this, once the minimum number has started (200; 50 over TLS): the
 * verdict does not depend on this machine's speed, and the test stays well under 20 s unless the
 * host is so loaded that the minimum takes longer.
 */
const BUDGET_MS = Number(env.SIDECAR_FUZZ_BUDGET_MS ?? 8000);
/** The TLS run's budget (handshakes cost CPU that three Node majors in CI share). */
const TLS_BUDGET_MS = Number(env.SIDECAR_FUZZ_TLS_BUDGET_MS ?? 2500);
/** A case with no answer by then is stalled (allowed only where the framing never ends). */
const DEADLINE_MS = 3000;
/** Where no answer is a correct outcome (framing that never ends), waiting longer proves nothing. */
const STALL_MS = 500;

interface Seen {
  method: string;
  url: string;
  body: Buffer | undefined;
}

/** An upstream that records every request by case id and answers 200 "ok" (503 on /f/x/). */
async function recordingUpstream() {
  const byId = new Map<string, Seen[]>();
  const failed = { count: 0 };
  const unexpected: string[] = [];
  const errors: string[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    const id = /^\/([fs]\/[rnx]\/\d+)/.exec(req.url ?? '')?.[1];
    const seen: Seen = { method: req.method ?? '', url: req.url ?? '', body: undefined };
    if (id === undefined) unexpected.push(`${req.method} ${req.url}`);
    else byId.set(id, [...(byId.get(id) ?? []), seen]);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.body = Buffer.concat(chunks);
      if (id?.startsWith('f/x/')) {
        failed.count++;
        res.statusCode = 503;
      }
      // No length (chunked to the proxy): an HTTP/1.0 client's answer can only end with the connection.
      if (req.headers['x-fuzz-unframed'] !== undefined) res.write('o');
      res.end(req.headers['x-fuzz-unframed'] !== undefined ? 'k' : 'ok');
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // What the proxy sent that the upstream's parser refused. Not one: the proxy resetting or
    // closing the connection mid-request (a client that left or sent a malformed body).
    if (err.code !== 'ECONNRESET' && err.code !== 'HPE_INVALID_EOF_STATE')
      errors.push(String(err.code ?? err.message));
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    byId,
    failed,
    unexpected,
    errors,
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

interface Outcome {
  data: Buffer;
  stalled: boolean;
}

/** A TLS run's listener certificate and the CA its client trusts. */
interface TlsSpec {
  cert_file: string;
  key_file: string;
  caPem: string;
}

function run(port: number, c: FuzzCase, tls: TlsSpec | undefined): Promise<Outcome> {
  return new Promise((resolve) => {
    const s = tls ? tlsConnect({ port, host: '127.0.0.1', ca: tls.caPem }) : connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let stalled = false;
    const timer = setTimeout(
      () => {
        stalled = true;
        s.destroy();
      },
      c.mayStall ? STALL_MS : DEADLINE_MS,
    );
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), stalled });
    });
    s.on(tls ? 'secureConnect' : 'connect', async () => {
      for (const p of c.pieces) {
        if (s.destroyed) return;
        s.write(p);
        if (c.pieces.length > 1) await new Promise((r) => setTimeout(r, 1));
      }
    });
  });
}

type Judge = (c: FuzzCase, o: Outcome, m: Seen[], next: Seen[]) => string | undefined;

/** The first broken invariant of one case, or undefined. */
const judge: Judge = (c, o, m, next) => {
  if (o.stalled) {
    if (!c.mayStall) return `no answer within ${DEADLINE_MS} ms`;
    if (next.length > 0) return 'stalled, yet the pipelined request was forwarded';
    return m.length > 1 ? `forwarded ${m.length} times` : undefined;
  }
  let rs: RawResponse[];
  try {
    rs = parseResponses(o.data, [c.method === 'HEAD', false]);
  } catch (err) {
    return `unparseable answer (${(err as Error).message}): ${JSON.stringify(o.data.toString('latin1').slice(0, 300))}`;
  }
  const first = rs[0];
  if (!first) return m.length > 0 ? 'forwarded, but the client got no response' : 'closed without a response';
  const closes = /close/i.test(first.headers.connection ?? '');
  let outcome: 'refuse' | 'forward' | 'local';
  if (m.length > 1) return `forwarded ${m.length} times`;
  if (m.length === 1 && m[0]!.body === undefined && first.status >= 400 && first.status < 500 && closes) {
    // The head was forwarded with a streamed body, then the body turned out malformed: the
    // upstream request was aborted mid-body (never a whole request), the client refused.
    outcome = 'refuse';
    if (rs.length > 1 || next.length > 0)
      return `refused with ${first.status} mid-body, yet answered or forwarded more`;
  } else if (m.length === 1) {
    outcome = 'forward';
    const s = m[0]!;
    if (s.method !== c.method) return `forwarded as ${s.method}, sent ${c.method}`;
    if (s.url !== c.target) return `forwarded to ${JSON.stringify(s.url)}, sent ${JSON.stringify(c.target)}`;
    if (s.body === undefined) return 'the forwarded body never ended';
    if (!s.body.equals(c.body))
      return `forwarded body of ${s.body.length} bytes differs from the ${c.body.length} sent`;
    if (first.status !== (c.upstreamFails ? 503 : 200)) return `forwarded, answered ${first.status}`;
  } else if (first.status === 404 && c.expect === 'local') outcome = 'local';
  else if (first.status === 404 && c.expect === 'either' && c.tags.includes('asterisk')) {
    // OPTIONS * (404, no route) with a body framing Node may take or refuse (seed 106472633: a
    // bare LF after a chunk size): taken, the request behind is served as after any 404; refused,
    // the connection ends after the 404, as in the branch below.
    if (m.length > 0) return 'OPTIONS * was forwarded';
    if (rs.length === 1 && next.length === 0) return undefined;
    outcome = 'local';
  } else if (first.status === 404 && c.expect === 'refuse' && c.tags.includes('asterisk') && m.length === 0) {
    // OPTIONS * is answered (404, no route) before its body is read; when that body then turns
    // out malformed, the connection ends with no second answer and nothing after it forwarded.
    if (rs.length > 1) return `answered 404, then ${rs.length - 1} more (a second answer to one request)`;
    if (next.length > 0)
      return 'answered 404 before a malformed body, yet the request after it was forwarded';
    return undefined;
  } else if ((first.status >= 400 && first.status < 500) || first.status === 505) {
    outcome = 'refuse';
    if (!closes) return `refused with ${first.status} without connection: close`;
    if (rs.length > 1) return `refused with ${first.status}, then answered ${rs.length - 1} more`;
    if (next.length > 0) return `refused with ${first.status}, yet the request after it was forwarded`;
  } else return `answered ${first.status} without forwarding`;
  if (outcome !== 'refuse') {
    if (c.lastOnConnection || closes) {
      // A response may close a connection Node has already read a pipelined request from (an
      // HTTP/1.0 client and no length): that request is never answered, so it must never have
      // reached the upstream either.
      if (next.length > 0) return `the connection closed, yet the request after it was forwarded`;
      if (rs.length > 1) return 'the connection should have ended after the first response';
    } else {
      if (next.length !== 1) return `the pipelined request was forwarded ${next.length} times`;
      if (next[0]!.url !== c.nextTarget || next[0]!.body?.length !== 0)
        return 'the pipelined request changed';
      if (rs.length !== 2 || rs[1]!.status !== 200)
        return `the pipelined request got ${rs.slice(1).map((r) => r.status)}`;
    }
  }
  if (c.expect === 'either')
    return outcome === 'local' && !c.tags.includes('asterisk') ? 'answered locally' : undefined;
  return outcome === c.expect ? undefined : `expected ${c.expect}, got ${outcome} (${first.status})`;
};

/** One fuzz run: up to `cases` cases from `base`, `concurrency` at a time, none started after `budgetMs`. */
interface RunSpec {
  cases: number;
  concurrency: number;
  budgetMs: number;
  /** An HTTPS listener (the client's bytes go through TLS records, split where TLS splits them). */
  tls?: TlsSpec;
}

async function fuzz(t: TestContext, spec: RunSpec): Promise<void> {
  const { cases: CASES, concurrency: CONCURRENCY, budgetMs: BUDGET_MS, tls } = spec;
  // Cases run whatever the budget says. A minimum met only within the budget failed on a loaded
  // host ('only 82 cases ran', 'only 20 cases ran' over TLS) with every case judged correct.
  const MIN_CASES = Math.min(CASES, tls ? 50 : 200);
  const u = await recordingUpstream();
  const retry = { attempts: 2, buffer_body_bytes: 100 };
  const routes: RouteConfig[] = [
    { prefix: '/f/r/', cluster: 'c', retry },
    { prefix: '/s/r/', cluster: 'c', retry },
    { prefix: '/', cluster: 'c' },
  ];
  // The breaker never opens and no host is ejected (so the cases stay independent); what they
  // record is compared with what the upstream did.
  const p = await proxy(
    [
      {
        name: 'c',
        hosts: [u.host],
        breaker: { trip: { kind: 'consecutive', threshold: 1_000_000 } },
        outlier_detection: { consecutive_5xx: 0, consecutive_gateway_failure: 0 },
      },
    ],
    routes,
    {
      extra: {
        listeners: [
          {
            port: 0,
            routes,
            headers_timeout_ms: 3000,
            request_timeout_ms: 6000,
            ...(tls ? { tls: { cert_file: tls.cert_file, key_file: tls.key_file } } : {}),
          },
        ],
      },
    },
  );
  const cluster = p.sidecar.clusters.get('c')!;
  let hostFailures = 0;
  const record = cluster.outlier.record.bind(cluster.outlier);
  cluster.outlier.record = (h, outcome) => {
    if (outcome !== 'success') hostFailures++;
    record(h, outcome);
  };
  const failures: string[] = [];
  const done: [FuzzCase, Outcome][] = [];
  const t0 = Date.now();
  let next = 0;
  // Upstream failures counted while a case ran: with SIDECAR_FUZZ_CONCURRENCY=1 that names the case.
  const failuresSoFar = () =>
    cluster.counters.resets +
    cluster.counters.timeouts +
    cluster.counters.connectFailures +
    cluster.breaker!.stats().failures +
    hostFailures -
    2 * u.failed.count;
  const suspects: number[] = [];
  const worker = async () => {
    while (next < CASES && (next < MIN_CASES || Date.now() - t0 < BUDGET_MS)) {
      const c = fuzzCase(single ?? (base + next) >>> 0);
      next++;
      const before = failuresSoFar();
      done.push([c, await run(p.port, c, tls)]);
      if (failuresSoFar() > before) suspects.push(c.seed);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, CASES) }, worker));
    const elapsed = Date.now() - t0;
    // Everything forwarded has reached the upstream and every count is back to 0.
    await until(
      () =>
        p.sidecar.inflight === 0 &&
        cluster.hosts.every((h) => h.active === 0) &&
        (['default', 'high'] as const).every(
          (k) =>
            cluster.limits[k].active === 0 &&
            cluster.limits[k].pending === 0 &&
            cluster.limits[k].retries === 0,
        ),
      5000,
    ).catch(() =>
      failures.push(
        `counters not back to 0: inflight ${p.sidecar.inflight}, active ${cluster.limits.default.active}, pending ${cluster.limits.default.pending}, retries ${cluster.limits.default.retries}, host active ${cluster.hosts.map((h) => h.active)}`,
      ),
    );
    const tally = new Map<string, number>();
    for (const [c, o] of done) {
      const id = c.target.match(/^\/f\/([rnx]\/\d+)/)![1]!;
      const why = judge(c, o, u.byId.get(`f/${id}`) ?? [], u.byId.get(`s/${id}`) ?? []);
      if (why) failures.push(`seed ${c.seed} [${c.tags.join(', ')}]: ${why}`);
      for (const tag of c.tags) {
        const k = tag.replace(/\(.*$/, '');
        tally.set(k, (tally.get(k) ?? 0) + 1);
      }
      if (single !== undefined)
        t.diagnostic(
          `case ${c.seed} [${c.tags.join(', ')}] expect ${c.expect}\nsent ${JSON.stringify(Buffer.concat(c.pieces).toString('latin1').slice(0, 2000))}\ngot ${JSON.stringify(o.data.toString('latin1').slice(0, 2000))}${o.stalled ? ' (stalled)' : ''}`,
        );
    }
    if (u.unexpected.length > 0)
      failures.push(`the upstream got requests no client sent: ${u.unexpected.slice(0, 5)}`);
    if (u.errors.length > 0)
      failures.push(`the upstream's parser refused what the proxy sent: ${u.errors.slice(0, 5)}`);
    const stats = cluster.breaker!.stats();
    if (stats.failures !== u.failed.count || cluster.breaker!.state !== 'closed')
      failures.push(
        `the breaker recorded ${stats.failures} failures (state ${cluster.breaker!.state}); the upstream answered ${u.failed.count} with 503; while cases ${suspects.slice(0, 30)} ran`,
      );
    if (hostFailures !== u.failed.count)
      failures.push(
        `outlier detection recorded ${hostFailures} host failures; the upstream answered ${u.failed.count} with 503`,
      );
    const c = cluster.counters;
    if (c.resets + c.timeouts + c.connectFailures > 0)
      failures.push(
        `upstream failures counted: resets ${c.resets}, timeouts ${c.timeouts}, connect ${c.connectFailures}`,
      );
    t.diagnostic(
      `${done.length} cases${tls ? ' over TLS' : ''} in ${elapsed} ms (base seed ${base}); upstream 503s ${u.failed.count}, breaker failures ${stats.failures}, host failures ${hostFailures}; mutations: ${[...tally].map(([k, n]) => `${k} ${n}`).join(', ')}`,
    );
    assert.ok(done.length >= MIN_CASES, `only ${done.length} cases ran`);
    assert.equal(
      failures.length,
      0,
      `${failures.length} failures (re-run one with SIDECAR_FUZZ_SEED=<seed> node --test packages/sidecar/dist/proxy/fuzz.test.js; this run: SIDECAR_FUZZ_BASE=${base}):\n${failures.slice(0, 25).join('\n')}`,
    );
  } finally {
    await p.sidecar.shutdown(1000);
    await u.close();
  }
}

test(`fuzz: hostile request heads and bodies over raw sockets (base seed ${base})`, (t) =>
  fuzz(t, { cases: CASES, concurrency: CONCURRENCY, budgetMs: BUDGET_MS }));

// The same cases (the first of the same base) through an HTTPS listener: Node's TLS server feeds
// the parser decrypted records, so reads split differently and the socket is a TLSSocket. Smaller:
// every connection is a handshake.
const certs = testCerts();
test(
  `fuzz over TLS: the same invariants through an HTTPS listener (base seed ${base})`,
  { skip: certs ? false : 'openssl is not installed (or failed): no test certificates' },
  (t) =>
    fuzz(t, {
      cases: single !== undefined ? 1 : Number(env.SIDECAR_FUZZ_TLS_CASES ?? 600),
      concurrency: Math.min(CONCURRENCY, 8),
      budgetMs: TLS_BUDGET_MS,
      tls: { cert_file: certs!.server.cert, key_file: certs!.server.key, caPem: certs!.caPem },
    }),
);
