import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const cli = fileURLToPath(new URL('../cli.js', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('tripswitch demo --json: a short run prints the result as JSON, progress on stderr, and exits 0', async () => {
  const r = await run(['demo', '--duration', '1.1', '--concurrency', '4', '--workers', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as {
    runs: Record<string, { phases: { name: string }[]; sent: number }>;
    comparison: { phase: string; route: string }[];
    aborted: boolean;
  };
  assert.deepEqual(Object.keys(result.runs), ['unprotected', 'protected']);
  assert.ok(result.runs.protected!.sent > 0);
  assert.equal(result.aborted, false);
  assert.ok(result.comparison.some((c) => c.phase === 'outage' && c.route === 'orders'));
  assert.match(r.stderr, /\[unprotected\] t=0\.0s {2}phase healthy/);
  assert.match(r.stderr, /\[protected\] done:/);
});

test('tripswitch demo rejects bad options', async () => {
  const r = await run(['demo', '--concurrency', '1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--concurrency must be an integer/);
  const t = await run(['demo', '--last-good-ttl', '-1']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /--last-good-ttl must be a number of seconds in \[0, 86400\], got "-1"/);
  const o = await run(['demo', '--outage', 'sideways']);
  assert.equal(o.code, 1);
  assert.match(o.stderr, /--outage must be hanging, failing or slow/);
});

test('tripswitch demo mode: switches the kept B on --port; an unknown mode is refused with the valid ones', async () => {
  const { startUpstream } = await import('./upstream.js');
  const b = await startUpstream();
  try {
    const r = await run(['demo', 'mode', 'hanging', '--port', String(b.port)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Service B (127.0.0.1:${b.port}) is hanging\n`);
    assert.equal(b.mode, 'hanging');
    const read = await run(['demo', 'mode', '--port', String(b.port)]);
    assert.equal(read.stdout, `Service B (127.0.0.1:${b.port}) is hanging\n`);
  } finally {
    await b.close();
  }
  const bad = await run(['demo', 'mode', 'sideways']);
  assert.equal(bad.code, 1);
  assert.equal(
    bad.stderr,
    'unknown mode "sideways": the modes are healthy, slow, failing, hanging, recovering\n',
  );
  const port = await run(['demo', '--port', '70000']);
  assert.equal(port.code, 1);
  assert.match(port.stderr, /--port must be an integer in \[1, 65533\] \(three ports from it\), got "70000"/);
});
