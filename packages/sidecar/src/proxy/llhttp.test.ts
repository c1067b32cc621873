/**
 * The guarded load of node's internal llhttp binding (`llhttp.ts`), which `http_server: own`
 * needs: every way a Node could lack it gives a reason instead of a crash, tried with a loader in
 * place of `require('node:_http_common')`.
 * @module
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { LlhttpStream, llhttpFrom, llhttpJudge, ownServerProblem } from './llhttp.js';

const real = () => createRequire(import.meta.url)('node:_http_common');

test("this Node's node:_http_common gives an HTTPParser the own server can use", () => {
  assert.equal(typeof llhttpFrom(real), 'function');
  assert.equal(ownServerProblem(), undefined);
  assert.deepEqual(llhttpJudge(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 1024), { refused: false, complete: 1 });
});

test('a Node without the module: the reason, not a crash', () => {
  const why = llhttpFrom(() => {
    throw new Error('No such built-in module: node:_http_common');
  });
  assert.equal(why, 'node:_http_common does not load (No such built-in module: node:_http_common)');
});

test('a module without HTTPParser, or with something else by that name: the reason', () => {
  for (const mod of [{}, null, undefined, { HTTPParser: 1 }, { HTTPParser: class {} }])
    assert.equal(
      llhttpFrom(() => mod),
      'node:_http_common has no HTTPParser class',
      String(mod),
    );
});

test('an HTTPParser that no longer reads requests as node drives it: the reason', () => {
  const P = (real() as { HTTPParser: { REQUEST: number; kOnMessageComplete: number } }).HTTPParser;
  const shape = { REQUEST: P.REQUEST, kOnMessageComplete: P.kOnMessageComplete };
  // Accepts anything (never refuses), or never completes a request.
  class Lax {
    initialize() {}
    execute(b: Buffer) {
      return b.length;
    }
    close() {}
  }
  assert.equal(
    llhttpFrom(() => ({ HTTPParser: Object.assign(Lax, shape) })),
    "node:_http_common's HTTPParser does not read requests as node's server drives it",
  );
  // Its methods changed (initialize throws on the arguments node 20-24 pass).
  class Changed extends Lax {
    override initialize() {
      throw new TypeError('initialize takes 5 arguments');
    }
  }
  assert.equal(
    llhttpFrom(() => ({ HTTPParser: Object.assign(Changed, shape) })),
    "node:_http_common's HTTPParser fails (initialize takes 5 arguments)",
  );
});

test('LlhttpStream: fed in pieces, the verdict of llhttpJudge on the whole', () => {
  const cases = [
    'GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nzNOT HTTP\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHo',
    `GET / HTTP/1.1\r\nX: ${'a'.repeat(2000)}\r\n\r\n`,
    'GET / HTTP/1.1\r\nA\x00: b\r\n\r\n',
  ];
  for (const text of cases)
    for (const piece of [1, 7, 1 << 20]) {
      const bytes = Buffer.from(text, 'latin1');
      const s = new LlhttpStream(1024);
      for (let i = 0; i < bytes.length; i += piece) s.feed(bytes.subarray(i, i + piece));
      s.close();
      const whole = llhttpJudge(bytes, 1024);
      assert.deepEqual(
        { refused: s.refused, complete: s.complete },
        whole,
        `${JSON.stringify(text)} in ${piece}`,
      );
    }
});
