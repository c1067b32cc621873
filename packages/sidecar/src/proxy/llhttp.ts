/**
 * Node's llhttp binding as `http_server: own` uses it: the `HTTPParser` of node's internal module
 * `node:_http_common` (present on Node 20-24, but not a public API). The own server judges bytes
 * pipelined behind a request being answered with it, exactly as node's server would read them.
 *
 * Loaded on first use, never at import, and checked: a Node without it (or with one that no
 * longer behaves as node's server drives it) must not crash the sidecar. Then a listener that does
 * not name `http_server` gets `node`, and an explicit `http_server: own` is a config error at the
 * field ({@link ownServerProblem} says why, for both).
 * @module
 */
import { createRequire } from 'node:module';

/** One llhttp parser, as node's http server drives it. */
export interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  close(): void;
}

/** The `HTTPParser` class of `node:_http_common`. */
export interface LlhttpClass {
  new (): LlhttpParser;
  REQUEST: number;
  kOnMessageComplete: number;
}

/**
 * How llhttp (class `P`) reads `bytes` from a request boundary as node's server does (strict,
 * `maxHeaderSize`): whether it finds them malformed (node's server would have failed the
 * connection), and how many whole requests it read before.
 */
function judge(P: LlhttpClass, bytes: Buffer, maxHeaderSize: number): { refused: boolean; complete: number } {
  const p = new P() as LlhttpParser & Record<number, () => void>;
  let complete = 0;
  p[P.kOnMessageComplete] = () => {
    complete++;
  };
  try {
    p.initialize(P.REQUEST, {}, maxHeaderSize, 0);
    return { refused: p.execute(bytes) instanceof Error, complete };
  } finally {
    p.close();
  }
}

/**
 * The `HTTPParser` class that `load` gives (what requiring `node:_http_common` returns), or why
 * the own server cannot use it: `load` threw, the module has no such class, or the class does not
 * read a valid request and refuse a malformed one as node's server relies on (a probe of two
 * requests, once per process). Taking the loader lets a test try every branch on any Node.
 */
export function llhttpFrom(load: () => unknown): LlhttpClass | string {
  let mod: unknown;
  try {
    mod = load();
  } catch (err) {
    return `node:_http_common does not load (${err instanceof Error ? err.message : String(err)})`;
  }
  const P = (mod as { HTTPParser?: unknown } | null | undefined)?.HTTPParser as LlhttpClass | undefined;
  if (typeof P !== 'function' || typeof P.REQUEST !== 'number' || typeof P.kOnMessageComplete !== 'number')
    return 'node:_http_common has no HTTPParser class';
  try {
    const good = judge(P, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'), 1024);
    const bad = judge(P, Buffer.from('NOT HTTP\r\n\r\n', 'latin1'), 1024);
    if (good.refused || good.complete !== 1 || !bad.refused)
      return "node:_http_common's HTTPParser does not read requests as node's server drives it";
  } catch (err) {
    return `node:_http_common's HTTPParser fails (${err instanceof Error ? err.message : String(err)})`;
  }
  return P;
}

let loaded: LlhttpClass | string | undefined;

/** This Node's llhttp class, or why the own server cannot have it (loaded once, on first use). */
function llhttp(): LlhttpClass | string {
  loaded ??= llhttpFrom(() => createRequire(import.meta.url)('node:_http_common'));
  return loaded;
}

/**
 * Why `http_server: own` cannot run on this Node (undefined: it can); see {@link llhttpFrom}.
 * The first call loads node's parser.
 */
export function ownServerProblem(): string | undefined {
  const l = llhttp();
  return typeof l === 'string' ? l : undefined;
}

/**
 * How llhttp reads `bytes` from a request boundary as node's server does (strict,
 * `maxHeaderSize`): whether it finds them malformed (node's server would have failed the
 * connection), and how many whole requests it read before. Only for a Node where
 * {@link ownServerProblem} is undefined (the own server is never started elsewhere).
 */
export function llhttpJudge(bytes: Buffer, maxHeaderSize: number): { refused: boolean; complete: number } {
  const l = llhttp();
  if (typeof l === 'string') throw new Error(`http_server: own cannot run on this Node: ${l}`);
  return judge(l, bytes, maxHeaderSize);
}

/**
 * llhttp reading a stream of requests as node's server does (strict, `maxHeaderSize`), fed each
 * byte once (in pieces, as they arrive): whether it has refused them (for good: node's server
 * would have failed the connection there), and how many whole requests it read. Only for a Node
 * where {@link ownServerProblem} is undefined; {@link LlhttpStream.close} frees the parser.
 */
export class LlhttpStream {
  #parser: (LlhttpParser & Record<number, () => void>) | undefined;
  /** Whole requests read. */
  complete = 0;
  /** The bytes fed are not HTTP as node's server reads it (nothing more is read). */
  refused = false;

  constructor(maxHeaderSize: number) {
    const l = llhttp();
    if (typeof l === 'string') throw new Error(`http_server: own cannot run on this Node: ${l}`);
    const p = new l() as LlhttpParser & Record<number, () => void>;
    p[l.kOnMessageComplete] = () => {
      this.complete++;
    };
    p.initialize(l.REQUEST, {}, maxHeaderSize, 0);
    this.#parser = p;
  }

  /** Reads the next bytes of the stream. */
  feed(bytes: Buffer): void {
    if (this.refused || this.#parser === undefined || bytes.length === 0) return;
    if (this.#parser.execute(bytes) instanceof Error) this.refused = true;
  }

  close(): void {
    this.#parser?.close();
    this.#parser = undefined;
  }
}
