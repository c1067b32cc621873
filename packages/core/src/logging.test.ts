import assert from 'node:assert/strict';
import { test } from 'node:test';
import { circuitBreaker } from './breaker.js';
import { logStateChanges } from './logging.js';
import { breakerRegistry } from './registry.js';

function recorder() {
  const lines: { level: string; obj: Record<string, unknown> }[] = [];
  return {
    lines,
    info: (obj: object) => lines.push({ level: 'info', obj: obj as Record<string, unknown> }),
    warn: (obj: object) => lines.push({ level: 'warn', obj: obj as Record<string, unknown> }),
  };
}

test('logs once per transition, warn on open', () => {
  const b = circuitBreaker({ name: 'x' });
  const log = recorder();
  const sub = logStateChanges(b, log);
  b.isolate();
  b.reset();
  assert.deepEqual(
    log.lines.map((l) => [l.level, l.obj.from, l.obj.to]),
    [
      ['warn', 'closed', 'isolated'],
      ['info', 'isolated', 'closed'],
    ],
  );
  sub.dispose();
  b.isolate();
  assert.equal(log.lines.length, 2);
});

test('follows breakers added to a registry later', () => {
  const r = breakerRegistry();
  const log = recorder();
  const sub = logStateChanges(r, log);
  r.get('late').isolate();
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0]?.obj.breaker, 'late');
  sub.dispose();
});
