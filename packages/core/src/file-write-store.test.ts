import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isInvalidOptionError } from './index.js';
import { fileWriteStore } from './file-write-store.js';

const tmp = () => join(mkdtempSync(join(tmpdir(), 'tripswitch-fws-')), 'queue', 'outbox.jsonl');
const w = (id: string, data: unknown = { id }) => ({ id, data, enqueuedAt: 1_000 });
const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean);

describe('fileWriteStore', () => {
  it('validates its arguments', () => {
    assert.throws(
      () => fileWriteStore(''),
      /fileWriteStore: option "path" must be a non-empty string, got ""/,
    );
    assert.throws(
      () => fileWriteStore('x', { compactAfter: -1 }),
      (e: unknown) => isInvalidOptionError(e) && /"compactAfter"/.test(String(e)),
    );
    assert.throws(() => fileWriteStore('x', { fsynk: true } as never), /"fsynk"/);
  });

  it('keeps writes across a close and reopen, in order, without the removed ones', async () => {
    const path = tmp();
    const s1 = fileWriteStore(path);
    assert.deepEqual(await s1.load(), []);
    await Promise.all([s1.append(w('a')), s1.append(w('b', [1, 'two', { three: null }])), s1.append(w('c'))]);
    await s1.remove('a');
    await s1.close();
    assert.equal(existsSync(`${path}.lock`), false, 'close releases the lock');
    const s2 = fileWriteStore(path);
    assert.deepEqual(await s2.load(), [w('b', [1, 'two', { three: null }]), w('c')]);
    await s2.close();
  });

  it('drops a last line a crash cut short, and appends cleanly after it', async () => {
    const path = tmp();
    const s1 = fileWriteStore(path);
    await s1.load();
    await s1.append(w('a'));
    await s1.close();
    appendFileSync(path, '{"a":"b","t":1000,"d":{"i'); // the crash
    const s2 = fileWriteStore(path);
    assert.deepEqual(await s2.load(), [w('a')]);
    await s2.append(w('c'));
    await s2.close();
    assert.deepEqual(lines(path).length, 2);
    const s3 = fileWriteStore(path);
    assert.deepEqual(await s3.load(), [w('a'), w('c')]);
    await s3.close();
  });

  it('refuses a file with a damaged line in the middle, naming the line, and leaves it as it was', async () => {
    const path = tmp();
    const s1 = fileWriteStore(path);
    await s1.load();
    await s1.append(w('a'));
    await s1.close();
    appendFileSync(path, 'garbage\n{"a":"b","t":1000,"d":1}\n');
    const before = readFileSync(path, 'utf8');
    const s2 = fileWriteStore(path);
    await assert.rejects(s2.load(), /outbox\.jsonl line 2 is not a queue record; the file was not changed/);
    writeFileSync(path, '{"a":"x","t":1,"d":1}\nnull\n');
    await assert.rejects(fileWriteStore(path).load(), /line 2 is not a queue record/);
    writeFileSync(path, before);
    assert.equal(readFileSync(path, 'utf8'), before);
    assert.equal(existsSync(`${path}.lock`), false, 'a failed load releases the lock');
  });

  it('compacts when tombstones outnumber writes, keeping order', async () => {
    const path = tmp();
    const s = fileWriteStore(path, { compactAfter: 10 });
    await s.load();
    for (let i = 0; i < 50; i++) await s.append(w(`w${i}`));
    for (let i = 0; i < 45; i++) await s.remove(`w${i}`);
    await s.append(w('last'));
    await s.close();
    const n = lines(path).length;
    assert.ok(n < 20, `the file was compacted (${n} lines)`);
    const s2 = fileWriteStore(path);
    assert.deepEqual(
      (await s2.load()).map((x) => x.id),
      ['w45', 'w46', 'w47', 'w48', 'w49', 'last'],
    );
    await s2.close();
  });

  it('refuses a second user of the same file, and takes over a lock whose holder died', async () => {
    const path = tmp();
    const s1 = fileWriteStore(path);
    await s1.load();
    await assert.rejects(
      fileWriteStore(path).load(),
      /is in use by process \d+ .*two queues must not share a file/,
    );
    await s1.close();
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    writeFileSync(`${path}.lock`, `${dead}\n`);
    const s2 = fileWriteStore(path);
    assert.deepEqual(await s2.load(), []);
    await s2.close();
  });

  it('rejects data that JSON cannot hold, storing nothing', async () => {
    const path = tmp();
    const s = fileWriteStore(path);
    await s.load();
    await assert.rejects(s.append(w('x', { n: 1n })), /data must be JSON-serialisable/);
    await s.close();
    assert.equal(readFileSync(path, 'utf8'), '');
  });

  it('a write whose append resolved survives the process being killed (SIGKILL) right after', async () => {
    const path = tmp();
    const mod = new URL('./file-write-store.js', import.meta.url).href;
    const script = `
      import { fileWriteStore } from ${JSON.stringify(mod)};
      const s = fileWriteStore(${JSON.stringify(path)});
      await s.load();
      const all = [];
      for (let i = 0; i < 200; i++) all.push(s.append({ id: 'w' + i, data: { i }, enqueuedAt: i }));
      await Promise.all(all);
      process.stdout.write('stored\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('stored')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const s = fileWriteStore(path);
    const got = await s.load(); // also takes over the dead child's lock
    assert.equal(got.length, 200);
    assert.deepEqual(got[199], { id: 'w199', data: { i: 199 }, enqueuedAt: 199 });
    await s.close();
  });
});
