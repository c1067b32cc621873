import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';

const index = new URL('./index.js', import.meta.url).href;

describe('retry backoff in a bare process', () => {
  it('keeps the process alive until the retry ends: a script awaiting it gets its answer and exits 0', () => {
    // Between attempts nothing else may hold the event loop (a refused connection leaves no
    // socket), so an unref'd backoff timer let Node exit mid-retry with code 13 and no output.
    const script = `
      import { constantBackoff, retry } from ${JSON.stringify(index)};
      let attempts = 0;
      const r = retry({ maxAttempts: 3, backoff: constantBackoff(50) });
      const out = await r.execute(() => { if (++attempts < 3) throw new Error('refused'); return 'ok'; });
      console.log(out, attempts);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(r.status, 0, `exit ${r.status}: ${r.stderr}`);
    assert.equal(r.stdout.trim(), 'ok 3');
  });
});
