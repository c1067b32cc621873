/**
 * Seeded hostile HTTP/1.1 request messages for the proxy fuzz test: a valid request, mutated (framing
 * headers duplicated or conflicting, odd whitespace and case, obs-fold, bare CR or LF, huge,
 * negative and hex sizes, absolute and asterisk forms, ...), with what a correct proxy may do with
 * it. Not exported from the package.
 * @module
 */
import { seededRandom } from 'tripswitch/chaos';

/** A small seeded PRNG (mulberry32, core's `seededRandom`): the same seed gives the same message on every machine. */
export const prng: (seed: number) => () => number = seededRandom;

/**
 * What the proxy may do with the mutated message: `refuse` (4xx and close, nothing forwarded),
 * `forward` (exactly once, as intended), `either`, or `local` (answered by the proxy, e.g. 404).
 */
export type Expect = 'refuse' | 'forward' | 'either' | 'local';

/** One fuzz case: the bytes to write (the mutated message, then a valid pipelined one). */
export interface FuzzCase {
  seed: number;
  /** The client's writes (split at random points in some cases). */
  pieces: Buffer[];
  /** The mutated message as intended: what the upstream must see if it is forwarded. */
  method: string;
  /** The upstream's request-target (origin-form), which carries the case id. */
  target: string;
  body: Buffer;
  expect: Expect;
  /** Body framing that leaves the message unfinished (a huge Content-Length): no answer is fine. */
  mayStall: boolean;
  /** The connection legitimately ends after the mutated message's response (HTTP/1.0, close, upgrade). */
  lastOnConnection: boolean;
  /** The pipelined valid request's target. */
  nextTarget: string;
  /** The upstream answers this message 503 (route x). */
  upstreamFails: boolean;
  /** Names of the mutations applied (printed on failure). */
  tags: string[];
}

const METHODS = ['GET', 'GET', 'POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];
const BODY_SIZES = [0, 1, 5, 63, 64, 65, 200, 1500, 70_000];
// Stronger expectations win when mutations combine.
const RANK: Record<Expect, number> = { forward: 0, local: 1, either: 2, refuse: 3 };

interface Header {
  name: string;
  value: string;
  /** Line ending after this header. */
  eol: string;
  /** Raw text replacing `name: value` (for malformed lines). */
  raw?: string;
}

/**
 * Builds case `seed`: `prefix` names the routes (`/f/r/` retried, `/f/n/` not); the pipelined
 * request goes to `/s/...`.
 */
export function fuzzCase(seed: number): FuzzCase {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const chance = (p: number) => r() < p;
  const marks: [tag: string, e: Expect][] = [];
  const at = (e: Expect, tag: string) => {
    marks.push([tag, e]);
  };
  // One mutation per group (two target rewrites would make a target no one intended).
  const used = new Set<string>();
  const once = (group: string, f: () => void) => () => {
    if (used.has(group)) return;
    used.add(group);
    f();
  };
  let mayStall = false;
  let last = false;

  let method = pick(METHODS);
  // r: a route with retries (bodies up to 100 bytes buffered), n: without, x: without, and the
  // upstream answers 503 (a failure it did cause, which must be counted, exactly once).
  const route = chance(0.08) ? 'x' : chance(0.5) ? 'r' : 'n';
  let target = `/f/${route}/${seed}${chance(0.3) ? `?q=${Math.floor(r() * 1e6)}&x=%20y` : ''}`;
  const upstreamTarget = target;
  let version = 'HTTP/1.1';
  const headers: Header[] = [{ name: 'Host', value: 'fuzz.example', eol: '\r\n' }];
  for (let i = Math.floor(r() * 4); i > 0; i--)
    headers.push({ name: `X-Rand-${i}`, value: String(Math.floor(r() * 1e9)), eol: '\r\n' });

  // The body, and its framing.
  const hasBody = method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS' ? chance(0.8) : chance(0.1);
  let body: Buffer = Buffer.alloc(0);
  let chunked = false;
  if (hasBody) {
    const n = pick(BODY_SIZES);
    body = Buffer.alloc(n);
    for (let i = 0; i < n; i++) body[i] = Math.floor(r() * 256);
    // Bodies that look like requests: a proxy that loses the framing forwards them.
    if (n >= 64 && chance(0.5))
      Buffer.from(`\r\n\r\nGET /smuggled/${seed} HTTP/1.1\r\nHost: x\r\n\r\n`).copy(body, 0);
    chunked = chance(0.4);
  }
  const sizes: string[] = [];
  let chunkData: Buffer[] = [];
  let chunkEol = '\r\n';
  let trailer = '';
  if (chunked) {
    let off = 0;
    while (off < body.length) {
      const len = Math.min(body.length - off, 1 + Math.floor(r() * Math.max(1, body.length / 2)));
      chunkData.push(body.subarray(off, off + len));
      sizes.push(len.toString(16));
      off += len;
    }
    headers.push({ name: 'Transfer-Encoding', value: 'chunked', eol: '\r\n' });
  } else if (hasBody || chance(0.2)) {
    headers.push({ name: 'Content-Length', value: String(body.length), eol: '\r\n' });
  }
  const cl = () => headers.find((h) => h.name.toLowerCase() === 'content-length');

  const mutations: (() => void)[] = [
    // --- framing headers
    () => {
      if (!cl()) return;
      headers.push({ name: 'Content-Length', value: cl()!.value, eol: '\r\n' });
      at('either', 'cl-dup-same');
    },
    () => {
      if (!cl()) return;
      headers.push({ name: 'content-length', value: String(body.length + 1), eol: '\r\n' });
      at('refuse', 'cl-dup-diff');
    },
    once('clvalue', () => {
      if (!cl()) return;
      cl()!.value = `${body.length}, ${body.length}`;
      at('either', 'cl-list');
    }),
    once('clvalue', () => {
      const h = cl();
      if (!h) return;
      const [v, e] = pick([
        [`+${body.length}`, 'refuse'],
        [`-${body.length}`, 'refuse'],
        [`0x${body.length.toString(16)}`, 'refuse'],
        [`00${body.length}`, 'forward'],
        [` ${body.length} `, 'forward'],
        [`${body.length}.0`, 'refuse'],
        ['', 'refuse'],
        ['99999999999999999999999', 'refuse'],
      ] as const);
      h.value = v;
      at(e, `cl-value(${JSON.stringify(v)})`);
    }),
    once('clvalue', () => {
      const h = cl();
      // Rarer than the rest: each such case waits out the client's deadline.
      if (!h || chance(0.6)) return;
      // Larger than what follows: the next request becomes body, and the message never ends.
      h.value = pick(['9007199254740993', '18446744073709551615', '4294967296', String(body.length + 100)]);
      // Past 2^53-1: refused (413); otherwise the next request becomes body and nothing ends.
      const exact = Number.isSafeInteger(Number(h.value));
      mayStall = exact;
      at(exact ? 'either' : 'refuse', `cl-huge(${h.value})`);
    }),
    () => {
      if (chunked || !cl()) return;
      // Chunked framing over a Content-Length header: smuggling (CL.TE).
      headers.push({ name: 'Transfer-Encoding', value: 'chunked', eol: '\r\n' });
      at('refuse', 'cl+te');
    },
    () => {
      if (!chunked) return;
      headers.push({ name: 'Content-Length', value: String(body.length), eol: '\r\n' });
      at('refuse', 'te+cl');
    },
    once('te', () => {
      if (!chunked) return;
      const te = headers.find((h) => h.name.toLowerCase() === 'transfer-encoding');
      if (!te) return;
      const [v, e] = pick([
        ['CHUNKED', 'forward'],
        ['Chunked', 'forward'],
        [' chunked\t', 'either'],
        ['chunked, chunked', 'either'],
        ['gzip, chunked', 'either'],
        ['chunked, gzip', 'refuse'],
        ['xchunked', 'refuse'],
        ['chunked-false', 'refuse'],
        ['identity', 'refuse'],
        ['"chunked"', 'refuse'],
        ['chunked\x0b', 'refuse'],
      ] as const);
      te.value = v;
      at(e, `te-value(${JSON.stringify(v)})`);
    }),
    once('te', () => {
      if (!chunked) return;
      headers.push({ name: 'Transfer-Encoding', value: 'chunked', eol: '\r\n' });
      at('either', 'te-dup');
    }),
    once('te', () => {
      if (!chunked) return;
      const te = headers.find((h) => h.name.toLowerCase() === 'transfer-encoding');
      if (!te) return;
      te.raw = pick([
        'Transfer-Encoding : chunked',
        'Transfer-Encoding\t: chunked',
        ' Transfer-Encoding: chunked',
      ]);
      at('refuse', `te-name-ws(${JSON.stringify(te.raw)})`);
    }),
    // --- chunk sizes
    () => {
      if (!chunked || sizes.length === 0) return;
      const i = Math.floor(r() * sizes.length);
      const n = Number.parseInt(sizes[i]!, 16);
      const [v, e] = pick([
        [n.toString(16).toUpperCase(), 'forward'],
        [`000${n.toString(16)}`, 'forward'],
        [`${n.toString(16)};ext=1`, 'forward'],
        [`${n.toString(16)};a="b c"`, 'forward'],
        [`${n.toString(16)} `, 'either'],
        [`-${n.toString(16)}`, 'refuse'],
        [`0x${n.toString(16)}`, 'refuse'],
        ['fffffffffffffffffff', 'refuse'],
        [`+${n.toString(16)}`, 'refuse'],
        [`${n.toString(16)}g`, 'refuse'],
      ] as const);
      sizes[i] = v;
      at(e, `chunk-size(${JSON.stringify(v)})`);
    },
    () => {
      if (!chunked || sizes.length === 0) return;
      chunkEol = pick(['\n', '\r']);
      at(chunkEol === '\r' ? 'refuse' : 'either', `chunk-eol(${JSON.stringify(chunkEol)})`);
    },
    () => {
      if (!chunked) return;
      trailer = pick(['X-Trailer: 1\r\n', 'X-T: a\r\nX-U: b\r\n']);
      at('forward', 'trailer');
    },
    () => {
      if (!chunked || chunkData.length === 0) return;
      // A chunk one byte longer than its size says.
      const i = Math.floor(r() * chunkData.length);
      chunkData = chunkData.map((c, j) => (j === i ? Buffer.concat([c, Buffer.from('Z')]) : c));
      at('refuse', 'chunk-overlong');
    },
    // --- whitespace, case, folding, line endings
    () => {
      for (const h of headers) if (chance(0.5)) h.name = caseFlip(h.name, r);
      at('forward', 'name-case');
    },
    () => {
      // obs-text (bytes 0x80-0xff) in a value, and every tchar in a name: valid, forwarded as they are.
      headers.push(
        { name: "X-!#$%&'*+-.^_`|~9", value: 'a', eol: '\r\n' },
        { name: 'X-Latin1', value: pick(['caf\u00e9', '\u00ff\u0080 x', 'a\u00a0b']), eol: '\r\n' },
      );
      at('forward', 'tchar-obs-text');
    },
    () => {
      const h = pick(headers.filter((x) => x.name.startsWith('X-')));
      if (!h) return;
      h.value = pick([`\t${h.value}`, `${h.value}  `, ` \t${h.value}\t `]);
      at('forward', 'value-ows');
    },
    () => {
      headers.push({ name: 'X-Fold', value: 'a', eol: '\r\n', raw: 'X-Fold: a\r\n  b' });
      at('refuse', 'obs-fold');
    },
    () => {
      const h = pick(headers.filter((x) => x.raw === undefined));
      if (!h) return;
      h.eol = '\n';
      at('either', 'bare-lf');
    },
    () => {
      headers.push({ name: 'X-Cr', value: 'a', eol: '\r\n', raw: pick(['X-Cr: a\rb', 'X-Cr: a\r']) });
      at('refuse', 'bare-cr');
    },
    () => {
      headers.push({
        name: 'X-Ctl',
        value: 'a',
        eol: '\r\n',
        raw: pick(['X-Ctl: a\x00b', 'X-Ctl: a\x7fb', 'X\x01: a']),
      });
      at('refuse', 'ctl');
    },
    () => {
      headers.push({ name: 'X-Sp', value: 'a', eol: '\r\n', raw: pick(['X-Sp : a', 'X Sp: a', ': a']) });
      at('refuse', 'name-ws');
    },
    // --- Host
    once('host', () => {
      headers.splice(0, 1);
      at('refuse', 'no-host');
    }),
    once('host', () => {
      headers.push({
        name: pick(['Host', 'host', 'HOST']),
        value: pick(['fuzz.example', 'other.example']),
        eol: '\r\n',
      });
      at('refuse', 'host-dup');
    }),
    once('host', () => {
      headers[0]!.value = pick(['a b', 'a/b', 'user@a', 'a:b:c', '[::1', 'a:99999']);
      at('refuse', `host-bad(${headers[0]!.value})`);
    }),
    once('host', () => {
      headers[0]!.value = pick(['', 'FUZZ.Example', 'fuzz.example:8080', '[::1]:80', '127.0.0.1']);
      at('forward', `host-odd(${headers[0]!.value})`);
    }),
    // --- request line and target
    once('target', () => {
      target = `${pick(['http', 'HTTP', 'https'])}://${pick(['fuzz.example', 'a.example:81', '[::1]'])}${target}`;
      at('forward', 'absolute-form');
    }),
    once('target', () => {
      target = `${pick(['ftp://a.example', 'http://', 'http://u@a.example', 'http://a b', 'foo'])}${target}`;
      at('refuse', 'absolute-bad');
    }),
    once('target', () => {
      target = '*';
      at(method === 'OPTIONS' ? 'local' : 'refuse', 'asterisk');
    }),
    once('target', () => {
      target = pick([`${target}#frag`, `${target}/\u00e9`, `${target}/a b`, `${target}\t`]);
      at('either', 'target-odd');
    }),
    once('method', () => {
      method = method.toLowerCase();
      at('refuse', 'method-case');
    }),
    once('version', () => {
      version = pick(['HTTP/1.0', 'HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1']);
      if (version === 'HTTP/1.0') {
        last = true;
        // HTTP/1.0 has no chunked coding (RFC 9112 section 6.1).
        at(chunked ? 'either' : 'forward', 'http/1.0');
      } else
        at(
          version === 'http/1.1' || version === 'HTTP/1' || version === 'HTTP/2.0' ? 'refuse' : 'either',
          `version(${version})`,
        );
    }),
    // --- limits and the rest
    () => {
      const n = pick([101, 150, 2500]);
      for (let i = 0; i < n; i++) headers.push({ name: `a${i}`, value: '', eol: '\r\n' });
      at('refuse', `headers-count(${n})`);
    },
    () => {
      headers.push({ name: 'X-Big', value: 'x'.repeat(pick([17_000, 70_000])), eol: '\r\n' });
      at('refuse', 'header-bytes');
    },
    once('expect', () => {
      headers.push({ name: 'Expect', value: '100-continue', eol: '\r\n' });
      at('forward', 'expect-continue');
    }),
    once('expect', () => {
      headers.push({ name: 'Expect', value: pick(['nonsense', '200-ok']), eol: '\r\n' });
      at('refuse', 'expect-other');
    }),
    once('connection', () => {
      headers.push({ name: 'Connection', value: 'close', eol: '\r\n' });
      last = true;
      at('forward', 'connection-close');
    }),
    once('connection', () => {
      if (hasBody) return;
      headers.push(
        { name: 'Connection', value: 'upgrade', eol: '\r\n' },
        { name: 'Upgrade', value: 'websocket', eol: '\r\n' },
      );
      last = true;
      // Only GET is tunnelled (405 and close otherwise); the upstream here answers 200, relayed, then close.
      at(method === 'GET' ? 'forward' : 'refuse', 'upgrade');
    }),
    once('connection', () => {
      headers.push({ name: 'Connection', value: 'keep-alive, X-Rand-1', eol: '\r\n' });
      at('forward', 'connection-list');
    }),
  ];
  const count = 1 + Math.floor(r() * 3);
  for (let i = 0; i < count; i++) if (chance(0.85)) pick(mutations)();
  // An answer that must close the connection though the request asked to keep it: HTTP/1.0
  // keep-alive, and the upstream answers without a length (X-Fuzz-Unframed), which only closing
  // can delimit. The request pipelined behind was read already and must not be forwarded. Drawn
  // from a second generator so that every other case keeps its bytes.
  if (!chunked && !used.has('version') && !used.has('connection') && prng(seed ^ 0x9e3779b9)() < 0.12) {
    version = 'HTTP/1.0';
    headers.push(
      { name: 'Connection', value: 'keep-alive', eol: '\r\n' },
      { name: 'X-Fuzz-Unframed', value: '1', eol: '\r\n' },
    );
    at('forward', 'http/1.0-unframed-answer');
  }
  // HTTP/1.0 needs no Host and knows no Expect (Node checks neither; the proxy drops Expect).
  const v10 = version === 'HTTP/1.0';
  let expect: Expect = 'forward';
  const tags: string[] = [];
  for (const [tag, e0] of marks) {
    const e =
      v10 && (tag === 'no-host' || tag === 'expect-other')
        ? 'forward'
        : v10 && tag === 'upgrade'
          ? 'either'
          : e0;
    tags.push(tag);
    if (RANK[e] > RANK[expect]) expect = e;
  }
  if (tags.length === 0) tags.push('valid');
  // HTTP/1.0 with Connection: keep-alive keeps the connection (unless the answer cannot be framed).
  if (v10 && tags.includes('connection-list') && !tags.includes('connection-close')) last = false;

  let head = `${method} ${target} ${version}\r\n`;
  for (const h of headers) head += `${h.raw ?? `${h.name}: ${h.value}`}${h.eol}`;
  head += '\r\n';
  const parts: Buffer[] = [Buffer.from(head, 'latin1')];
  if (chunked) {
    for (let i = 0; i < chunkData.length; i++)
      parts.push(Buffer.from(`${sizes[i]}${chunkEol}`, 'latin1'), chunkData[i]!, Buffer.from('\r\n'));
    parts.push(Buffer.from(`0\r\n${trailer}\r\n`));
  } else parts.push(body);
  const nextTarget = `/s/${route}/${seed}`;
  parts.push(Buffer.from(`GET ${nextTarget} HTTP/1.1\r\nHost: fuzz.example\r\nConnection: close\r\n\r\n`));
  const all = Buffer.concat(parts);
  // Some cases arrive in pieces, split anywhere (the parser's state across reads).
  const pieces: Buffer[] = [];
  if (chance(0.2)) {
    let off = 0;
    for (let k = 1 + Math.floor(r() * 3); k > 0 && off < all.length; k--) {
      const cut = off + 1 + Math.floor(r() * (all.length - off));
      pieces.push(all.subarray(off, cut));
      off = cut;
    }
    if (off < all.length) pieces.push(all.subarray(off));
  } else pieces.push(all);
  return {
    seed,
    pieces,
    method: method.toUpperCase(),
    target: upstreamTarget,
    body,
    expect,
    mayStall,
    lastOnConnection: last,
    nextTarget,
    upstreamFails: route === 'x',
    tags,
  };
}

function caseFlip(s: string, r: () => number): string {
  let out = '';
  for (const c of s) out += r() < 0.5 ? c.toUpperCase() : c.toLowerCase();
  return out;
}

/** A response read off the client connection. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Splits what the proxy wrote into responses (1xx dropped): Content-Length, chunked, or until close;
 * `bodiless[i]` for a HEAD request's answer. Throws on bytes that are not a response.
 */
export function parseResponses(data: Buffer, bodiless: boolean[]): RawResponse[] {
  const out: RawResponse[] = [];
  let off = 0;
  while (off < data.length) {
    const end = data.indexOf('\r\n\r\n', off);
    if (end < 0) throw new Error(`truncated response head at byte ${off}`);
    const lines = data.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(`${lines[0]} `);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    off = end + 4;
    if (status < 200) continue;
    let body: Buffer = Buffer.alloc(0);
    if (bodiless[out.length] === true && /close/i.test(headers.connection ?? '')) {
      // A HEAD answered before the connection closes: a refusal written raw may carry a body.
      body = data.subarray(off);
      off = data.length;
    } else if (bodiless[out.length] === true || status === 204 || status === 304) {
      // no body
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = data.subarray(off, off + n);
      if (body.length < n) throw new Error('truncated response body');
      off += n;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts: Buffer[] = [];
      for (;;) {
        const e = data.indexOf('\r\n', off);
        if (e < 0) throw new Error('truncated chunk');
        const n = Number.parseInt(data.subarray(off, e).toString('latin1'), 16);
        off = e + 2;
        if (n === 0) {
          const t = data.indexOf('\r\n\r\n', off - 2);
          off = t + 4;
          break;
        }
        parts.push(data.subarray(off, off + n));
        off += n + 2;
      }
      body = Buffer.concat(parts);
    } else {
      body = data.subarray(off);
      off = data.length;
    }
    out.push({ status, headers, body });
  }
  return out;
}
