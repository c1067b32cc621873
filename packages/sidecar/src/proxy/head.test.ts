import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { checkHead } from './head.js';

const req = (host: string) =>
  ({
    rawHeaders: ['Host', host],
    headers: { host },
    httpVersionMajor: 1,
    httpVersionMinor: 1,
    httpVersion: '1.1',
    method: 'GET',
    url: '/',
  }) as unknown as IncomingMessage;

test('checkHead: a Host found good does not make the next, different one good, and a bad one stays bad (the check keeps the last good value)', () => {
  for (const [good, bad] of [
    ['api.example:8080', 'api.example:99999'],
    ['a', 'a b'],
    ['[::1]:80', '[::1]:80/x'],
  ] as const) {
    assert.equal(checkHead(req(good), 100), undefined, good);
    assert.deepEqual(checkHead(req(bad), 100), { status: 400, reason: 'invalid Host header' }, bad);
    assert.equal(checkHead(req(good), 100), undefined, `${good} again`);
    assert.deepEqual(
      checkHead(req(bad), 100),
      { status: 400, reason: 'invalid Host header' },
      `${bad} again`,
    );
    assert.deepEqual(
      checkHead(req(bad), 100),
      { status: 400, reason: 'invalid Host header' },
      `${bad} twice in a row`,
    );
  }
});
