/**
 * The guarded load of node's internal llhttp binding (`llhttp.ts`), which `http_server: own`
 * needs: every way a Node could lack it gives a reason instead of a crash, tried with a loader in
 * place of `require('node:_http_common')`.
 * @module
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { llhttpFrom, llhttpJudge, ownServerProblem } from './llhttp.js';

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
