import assert from 'node:assert/strict';
import { test } from 'node:test';
import { circuitBreaker, isInvalidOptionError } from './index.js';
import { showValue } from './errors.js';

class TimeoutishError extends Error {}

test('showValue: what JSON drops or mangles inside arrays and objects is still named', () => {
  assert.equal(showValue([TimeoutishError, 'x']), '[class TimeoutishError, "x"]');
  assert.equal(showValue([() => 1]), '[a function]');
  assert.equal(showValue({ a: TimeoutishError, b: undefined }), '{a: class TimeoutishError, b: undefined}');
  assert.equal(showValue([Symbol('s'), 1n, Number.NaN, -0]), '[Symbol(s), 1n, NaN, -0]');
  assert.equal(showValue([1, [2, [3, [4, [5]]]]]), '[1, [2, [3, [...]]]]');
  assert.equal(showValue(new Map()), 'a Map');
  assert.equal(showValue(new Date(0)), 'a Date');
});

test('showValue: plain values as before; long and circular ones stay short', () => {
  assert.equal(showValue('a'), '"a"');
  assert.equal(showValue(3), '3');
  assert.equal(showValue(null), 'null');
  assert.equal(showValue(undefined), 'undefined');
  assert.equal(
    showValue(() => 1),
    'a function',
  );
  assert.equal(showValue(TimeoutishError), 'class TimeoutishError');
  assert.equal(showValue({ kind: 'count', windowSize: 10 }), '{kind: "count", windowSize: 10}');
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.equal(showValue(cyclic), '{a: 1, self: [circular]}');
  const long = showValue(Array.from({ length: 100 }, (_, i) => i));
  assert.ok(long.length <= 80 && long.endsWith('...'), long);
});

test('an option error names what was given, even inside an array', () => {
  assert.throws(
    () => circuitBreaker({ isFailure: [TimeoutishError, 42] as never }),
    (e: unknown) => isInvalidOptionError(e) && !/null/.test(e.message) && /42/.test(e.message),
  );
});
