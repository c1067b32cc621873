import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as sidecar from './index.js';

test('the demo runs from code as docs/demo.md says: runDemo and formatReport from the package root', () => {
  const doc = readFileSync(new URL('../../../docs/demo.md', import.meta.url), 'utf8');
  const line = doc.match(/import \{ ([\w, ]+) \} from '@tripswitch\/sidecar'/);
  assert.ok(line, 'docs/demo.md shows the import');
  for (const name of line[1]!.split(', '))
    assert.equal(typeof (sidecar as Record<string, unknown>)[name], 'function', name);
  assert.ok(line[1]!.includes('runDemo'));
});
