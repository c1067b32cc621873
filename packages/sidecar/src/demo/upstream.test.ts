import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { isUpstreamMode, startUpstream, UPSTREAM_MODES } from './upstream.js';

async function get(url: string, dispatcher?: Agent) {
  const r = await request(url, dispatcher ? { dispatcher } : {});
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
}

async function until(cond: () => boolean, what: string) {
  // Bounded wait for a condition another socket's events make true (no timing assumption beyond 2 s).
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

test('healthy answers 200 with orders, failing 500, switched by setMode', async () => {
  const b = await startUpstream();
  try {
    assert.equal(b.mode, 'healthy');
    const ok = await get(`${b.url}/orders`);
    assert.equal(ok.status, 200);
    assert.ok(Array.isArray(ok.body.orders));
    b.setMode('failing');
    assert.equal((await get(`${b.url}/orders`)).status, 500);
    b.setMode('healthy');
    assert.equal((await get(`${b.url}/orders`)).status, 200);
    assert.deepEqual(
      { received: b.stats().received, ok: b.stats().ok, failed: b.stats().failed },
      { received: 3, ok: 2, failed: 1 },
    );
    assert.throws(() => b.setMode('sideways' as never), /unknown upstream mode/);
  } finally {
    await b.close();
  }
});

test('POST /mode switches the mode at runtime; GET /mode reads it; a bad mode is 400', async () => {
  const b = await startUpstream();
  try {
    let r = await request(`${b.url}/mode`, { method: 'POST', body: 'failing' });
    assert.equal(r.statusCode, 200);
    assert.deepEqual(await r.body.json(), { mode: 'failing' });
    assert.equal(b.mode, 'failing');
    r = await request(`${b.url}/mode?mode=slow`, { method: 'POST' });
    assert.equal(r.statusCode, 200);
    await r.body.dump();
    assert.equal((await get(`${b.url}/mode`)).body.mode, 'slow');
    r = await request(`${b.url}/mode`, { method: 'POST', body: 'sideways' });
    assert.equal(r.statusCode, 400);
    await r.body.dump();
    assert.equal(b.mode, 'slow');
    assert.equal(b.stats().received, 0, 'admin requests are not counted as traffic');
  } finally {
    await b.close();
  }
});

test('slow answers 200 after slowMs (not before)', async () => {
  const b = await startUpstream({ mode: 'slow', slowMs: 80 });
  try {
    const t = performance.now();
    const r = await get(`${b.url}/orders`);
    const took = performance.now() - t;
    assert.equal(r.status, 200);
    assert.ok(took >= 75, `answered after ${took} ms, before the 80 ms delay`);
  } finally {
    await b.close();
  }
});

test('hanging never answers; the request stays pending until the client gives up', async () => {
  const b = await startUpstream({ mode: 'hanging' });
  const agent = new Agent();
  try {
    const ac = new AbortController();
    const pending = request(`${b.url}/orders`, { dispatcher: agent, signal: ac.signal });
    await until(() => b.stats().pending === 1, 'the request to reach B');
    ac.abort();
    await assert.rejects(pending);
    await until(() => b.stats().abandoned === 1, 'B to see the abort');
    assert.equal(b.stats().pending, 0);
    assert.equal(b.stats().ok + b.stats().failed, 0);
  } finally {
    await agent.close();
    await b.close();
  }
});

test('hanging requests end when the server closes', async () => {
  const b = await startUpstream({ mode: 'hanging' });
  const agent = new Agent();
  const pending = request(`${b.url}/orders`, { dispatcher: agent });
  await until(() => b.stats().pending === 1, 'the request to reach B');
  await b.close();
  await assert.rejects(pending);
  await agent.close();
});

test('recovering fails the first recoveringFailures requests with 503, then answers 200', async () => {
  const b = await startUpstream({ recoveringFailures: 3 });
  try {
    b.setMode('recovering');
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(`${b.url}/orders`)).status);
    assert.deepEqual(statuses, [503, 503, 503, 200, 200]);
    b.setMode('recovering'); // each switch starts over
    assert.equal((await get(`${b.url}/orders`)).status, 503);
  } finally {
    await b.close();
  }
});

test('isUpstreamMode knows every mode', () => {
  for (const m of UPSTREAM_MODES) assert.ok(isUpstreamMode(m));
  assert.equal(isUpstreamMode('down'), false);
  assert.equal(isUpstreamMode(undefined), false);
});

async function post(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const r = await request(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
    signal,
  });
  return { status: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
}

test('POST /orders applies each id once (idempotency-key header, or the body id); GET /writes counts', async () => {
  const b = await startUpstream();
  try {
    const url = `${b.url}/orders`;
    assert.deepEqual(await post(url, { id: 'a1' }), {
      status: 201,
      body: { id: 'a1', duplicate: false, servedBy: 'service-b' },
    });
    assert.equal((await post(url, { id: 'a1' })).status, 200, 'the same body id again: a repeat');
    assert.equal((await post(url, { id: 'a1' })).body.duplicate, true);
    // With a key, the key decides: the same key with another body is a repeat, a new key is new.
    assert.equal((await post(url, { id: 'a2' }, { 'idempotency-key': 'k1' })).status, 201);
    assert.equal((await post(url, { id: 'a2' }, { 'idempotency-key': 'k1' })).status, 200);
    assert.equal((await post(url, { id: 'a3' }, { 'idempotency-key': 'k1' })).status, 200);
    assert.equal((await post(url, { id: 7 }, { 'idempotency-key': 'k2' })).status, 201);
    assert.equal((await post(url, { nope: true })).status, 400);
    assert.equal((await post(url, 'not an object')).status, 400);
    assert.deepEqual([...b.appliedIds()], ['a1', 'a2', '7']);
    assert.deepEqual(b.stats().writes, { received: 9, applied: 3, duplicates: 4 });
    assert.deepEqual((await get(`${b.url}/writes`)).body, { received: 9, applied: 3, duplicates: 4 });
  } finally {
    await b.close();
  }
});

test('POST /orders in failing, recovering and hanging modes: nothing is applied until B answers it', async () => {
  const b = await startUpstream({ mode: 'failing', recoveringFailures: 1 });
  try {
    const url = `${b.url}/orders`;
    assert.equal((await post(url, { id: 'x' })).status, 500);
    b.setMode('recovering');
    assert.equal((await post(url, { id: 'x' })).status, 503);
    assert.equal((await post(url, { id: 'x' })).status, 201, 'recovered: applied now');
    b.setMode('hanging');
    const ac = new AbortController();
    const hung = post(url, { id: 'y' }, {}, ac.signal);
    await until(() => b.stats().pending === 1, 'the POST to hang');
    ac.abort();
    await assert.rejects(hung);
    await until(() => b.stats().abandoned === 1, 'B to see the client give up');
    assert.deepEqual([...b.appliedIds()], ['x']);
    assert.deepEqual(b.stats().writes, { received: 4, applied: 1, duplicates: 0 });
  } finally {
    await b.close();
  }
});
