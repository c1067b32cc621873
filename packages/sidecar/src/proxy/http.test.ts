import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isKeepAlive, responseHeaders } from './http.js';

test('isKeepAlive: only a Connection value that is exactly keep-alive, in any case', () => {
  assert.equal(isKeepAlive('keep-alive'), true);
  assert.equal(isKeepAlive('Keep-Alive'), true);
  assert.equal(isKeepAlive('KEEP-ALIVE'), true);
  for (const v of ['close', 'keep-alive, x-a', ' keep-alive', 'keep-alivf', 'upgrade', ''])
    assert.equal(isKeepAlive(v), false, v);
});

test('responseHeaders: Connection-listed headers go whatever the keep-alive fast path takes', () => {
  const raw = ['Connection', 'Keep-Alive', 'X-A', '1', 'Content-Length', '2'];
  assert.deepEqual(responseHeaders([...raw]), ['X-A', '1', 'Content-Length', '2']);
  const listed = ['Connection', 'keep-alive, X-A', 'X-A', '1', 'X-B', '2'];
  assert.deepEqual(responseHeaders([...listed]), ['X-B', '2']);
  // undici's Buffer lists take the same path.
  assert.deepEqual(responseHeaders(listed.map((s) => Buffer.from(s, 'latin1'))), ['X-B', '2']);
});
