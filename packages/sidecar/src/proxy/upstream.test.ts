import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { Pool } from 'undici';
import { upstream } from './test-helpers.js';
import { UpstreamHandler } from './upstream.js';
import type { CompiledRoute } from './route.js';

/** A client response that refuses writes (backpressure) until 'drain' is emitted. */
class SlowResponse extends EventEmitter {
  destroyed = false;
  status = 0;
  headers: string[] = [];
  chunks: Buffer[] = [];
  ended = false;
  full = true;
  writeHead(status: number, headers: string[]) {
    this.status = status;
    this.headers = headers;
  }
  write(chunk: Buffer) {
    this.chunks.push(chunk);
    return !this.full;
  }
  end(chunk?: Buffer) {
    if (chunk) this.chunks.push(chunk);
    this.ended = true;
  }
}

class Probe extends UpstreamHandler {
  readonly route = { lastGood: undefined } as unknown as CompiledRoute;
  readonly req = { method: 'GET', url: '/' } as IncomingMessage;
  ended: Promise<void>;
  #done!: () => void;
  constructor(readonly res: ServerResponse) {
    super();
    this.ended = new Promise((r) => {
      this.#done = r;
    });
  }
  protected forward(): boolean {
    return true;
  }
  protected attemptEnded(): void {
    this.#done();
  }
  protected attemptFailed(err: Error): void {
    throw err;
  }
}

test('undici 7 handler API: backpressure pauses the attempt through its controller, drain resumes it', async () => {
  const body = Buffer.alloc(4 << 20, 7);
  const u = await upstream((_req, res) => {
    res.setHeader('Connection', 'x-secret');
    res.setHeader('X-Secret', 'hop');
    res.setHeader('X-Kept', 'yes');
    res.end(body);
  });
  const pool = new Pool(`http://${u.host}`);
  const res = new SlowResponse();
  const h = new Probe(res as unknown as ServerResponse);
  try {
    pool.dispatch({ path: '/', method: 'GET' }, h);
    await new Promise<void>((resolve) => {
      const check = () => (h.controller?.paused ? resolve() : setImmediate(check));
      check();
    });
    assert.equal(res.status, 200);
    assert.ok(
      res.headers.includes('X-Kept') && !res.headers.includes('X-Secret'),
      'Connection-listed dropped',
    );
    assert.equal(res.ended, false, 'paused before the end');
    res.full = false;
    res.emit('drain');
    await h.ended;
    assert.equal(res.ended, true);
    assert.ok(Buffer.concat(res.chunks).equals(body), 'every byte, in order');
  } finally {
    await pool.close();
    await u.close();
  }
});

test('a client that left aborts the attempt at its start (onRequestStart)', async () => {
  const u = await upstream((_req, res) => res.end('x'));
  const pool = new Pool(`http://${u.host}`);
  const res = new SlowResponse();
  let failed: Error | undefined;
  const h = new (class extends Probe {
    protected override attemptFailed(err: Error): void {
      failed = err;
    }
  })(res as unknown as ServerResponse);
  h.clientGone = true;
  try {
    await new Promise<void>((resolve) => {
      pool.dispatch({ path: '/', method: 'GET' }, h);
      const check = () => (failed ? resolve() : setImmediate(check));
      check();
    });
    assert.match(String(failed), /client closed/);
    assert.equal(u.hits, 0, 'nothing reached the upstream');
  } finally {
    await pool.close();
    await u.close();
  }
});
