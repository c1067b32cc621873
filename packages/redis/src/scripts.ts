/**
 * The Lua scripts the store runs on Redis. Internal.
 *
 * Every script is a fixed string defined here and loaded once per connection with ioredis'
 * `defineCommand` (EVALSHA, falling back to EVAL after a server restart flushed the script cache).
 * Nothing a caller passes is ever evaluated: names, reasons and ids travel as ARGV values.
 *
 * Time inside the scripts comes from the Redis server (`TIME`, `PX` TTLs), never from a client, so
 * no decision depends on the wall clocks of the instances agreeing.
 *
 * Keys of one breaker share a hash tag (`prefix:{name}:...`) so a cluster keeps them on one slot,
 * and every key a script touches is declared in KEYS (cluster proxies and ACLs see all of them).
 * A script publishes with `PUBLISH` on one channel per store, or, on a Redis Cluster, with
 * `SPUBLISH` on the breaker's own channel `prefix:{name}:events` (same slot as its keys), so a
 * state change reaches the one shard that serves the breaker instead of every node.
 *
 * @module
 */

/**
 * Shared preamble: a version that only grows, even across a Redis restart that lost the hash
 * (it starts from the server's clock in ms), so receivers can drop out-of-order messages.
 */
const nextVersion = `
local function next_version(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cur = tonumber(redis.call('HGET', key, 'v') or '0')
  local v = math.max(cur + 1, now)
  redis.call('HSET', key, 'v', string.format('%d', v))
  return v
end
`;

/** `publish(channel, payload, sharded)`: SPUBLISH on a cluster, PUBLISH otherwise. */
const publish = `
local function publish(channel, payload, sharded)
  if sharded == '1' then redis.call('SPUBLISH', channel, payload) else redis.call('PUBLISH', channel, payload) end
end
`;

/**
 * Publishes one transition.
 * KEYS: state hash, open marker, probe lease, fleet counts.
 * ARGV: to, reason, openMs, instance, kind ('auto' | 'manual'), channel, name, from, sequence
 * (the sender's count of local transitions, echoed in the message), sharded ('1' | '0').
 * Returns { applied (1|0), version, state now stored, remaining open ms (-1 when none) }.
 *
 * Automatic transitions never override a manual state set elsewhere, a second trip keeps the
 * first opener's period, and a probe result from an instance that does not hold the probe lease
 * cannot close the breaker for everyone.
 */
export const transitionScript: string = `${nextVersion}${publish}
local to, reason, instance, kind, from = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[8]
local cur = redis.call('HGET', KEYS[1], 'st')
local function current()
  return {0, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'), cur or '', redis.call('PTTL', KEYS[2])}
end
if kind == 'auto' then
  if cur == 'isolated' or cur == 'disabled' or cur == 'metrics-only' then return current() end
  if to == 'open' and from == 'closed' and cur == 'open' and redis.call('PTTL', KEYS[2]) > 0 then
    return current()
  end
  if to == 'closed' then
    if cur == 'closed' then return current() end
    local holder = redis.call('GET', KEYS[3])
    if holder and holder ~= instance then return current() end
  end
end
local v = next_version(KEYS[1])
redis.call('HSET', KEYS[1], 'st', to, 'r', reason, 'i', instance)
local d = -1
if to == 'open' then
  d = math.max(1, math.floor(tonumber(ARGV[3])))
  redis.call('SET', KEYS[2], '1', 'PX', d)
else
  redis.call('DEL', KEYS[2])
end
-- a close starts the fleet count afresh
if to == 'closed' then redis.call('DEL', KEYS[4]) end
if kind == 'manual' or to == 'open' then
  -- an operator's decision, or a fresh open period: any probe lease is void
  redis.call('DEL', KEYS[3])
elseif from == 'half-open' and redis.call('GET', KEYS[3]) == instance then
  redis.call('DEL', KEYS[3])
end
publish(ARGV[6], cjson.encode({n = ARGV[7], s = to, r = reason, d = d, i = instance, v = v, q = tonumber(ARGV[9])}), ARGV[10])
return {1, v, to, d}
`;

/**
 * Reads the shared state of one breaker.
 * KEYS: state hash, open marker.
 * Returns { state ('' when unknown), reason, version, remaining open ms (PTTL: -2 when none) }.
 */
export const readScript: string = `
local h = redis.call('HMGET', KEYS[1], 'st', 'r', 'v')
return {h[1] or '', h[2] or '', tonumber(h[3] or '0'), redis.call('PTTL', KEYS[2])}
`;

/**
 * Asks for the fleet-wide half-open probe lease (one holder at a time, expiring on its own).
 * KEYS: probe lease, state hash, open marker.
 * ARGV: instance, lease ms.
 * Returns { 1 granted | 0 refused, stored state, remaining open ms, version of the stored state }.
 */
export const probeScript: string = `
local h = redis.call('HMGET', KEYS[2], 'st', 'v')
local st, v = h[1], tonumber(h[2] or '0')
local pttl = redis.call('PTTL', KEYS[3])
if st == 'isolated' or st == 'disabled' or st == 'metrics-only' or st == 'closed' then
  return {0, st, pttl, v}
end
if pttl > 0 then return {0, st or '', pttl, v} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, st or '', pttl, v} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, st or '', pttl, v}
end
return {0, st or '', pttl, v}
`;

/**
 * Adds a batch of outcomes to the fleet-wide window and trips the breaker for everyone when the
 * aggregate crosses the rule. Counts are dropped while the stored state is not closed, and a
 * close deletes the counts (transition script), so a recovered breaker starts from zero.
 * The window is one hash: fields `<bucket>:s|f|ss|sf` for the buckets in the window and `last`,
 * the newest bucket written; buckets that left the window are deleted at the next flush, and the
 * whole hash expires when no flush comes for a window.
 * KEYS: state hash, open marker, fleet counts.
 * ARGV: 1 bucket ms, 2 buckets, 3 successes, 4 failures, 5 slow successes, 6 slow failures,
 *       7 minimum calls, 8 failure rate threshold, 9 slow call rate threshold, 10 failure count
 *       (0 = off), 11 open ms, 12 instance, 13 channel, 14 name, 15 sequence, 16 sharded.
 * Returns { 0 dropped | 1 counted | 2 tripped, calls, failures, slow calls, version, open ms }.
 */
export const flushScript: string = `${nextVersion}${publish}
local st = redis.call('HGET', KEYS[1], 'st')
if st and st ~= 'closed' then return {0, 0, 0, 0, 0, -1} end
local bucketMs = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / bucketMs)
local fields = {'s', 'f', 'ss', 'sf'}
local function field(b, i) return string.format('%d', b) .. ':' .. fields[i] end
local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '')
if last then
  if last <= idx - n then
    redis.call('DEL', KEYS[3])
  else
    -- the hash holds buckets last-n+1 .. last; those before idx-n+1 just left the window
    for b = last - n + 1, idx - n do
      for i = 1, 4 do redis.call('HDEL', KEYS[3], field(b, i)) end
    end
  end
end
for i = 1, 4 do
  local c = tonumber(ARGV[2 + i])
  if c > 0 then redis.call('HINCRBY', KEYS[3], field(idx, i), c) end
end
if not last or idx > last then redis.call('HSET', KEYS[3], 'last', string.format('%d', idx)) end
redis.call('PEXPIRE', KEYS[3], bucketMs * (n + 1))
local want = {}
for b = idx - n + 1, idx do
  for i = 1, 4 do want[#want + 1] = field(b, i) end
end
local h = redis.call('HMGET', KEYS[3], unpack(want))
local sum = {0, 0, 0, 0}
for k = 1, #h do
  local i = (k - 1) % 4 + 1
  sum[i] = sum[i] + tonumber(h[k] or '0')
end
local calls = sum[1] + sum[2] + sum[3] + sum[4]
local failures = sum[2] + sum[4]
local slow = sum[3] + sum[4]
local trip = false
if calls > 0 and calls >= tonumber(ARGV[7]) then
  if failures / calls >= tonumber(ARGV[8]) then trip = true end
  if slow / calls >= tonumber(ARGV[9]) then trip = true end
  local fc = tonumber(ARGV[10])
  if fc > 0 and failures >= fc then trip = true end
end
if not trip then return {1, calls, failures, slow, 0, -1} end
local v = next_version(KEYS[1])
local d = math.max(1, math.floor(tonumber(ARGV[11])))
redis.call('HSET', KEYS[1], 'st', 'open', 'r', 'fleet-trip', 'i', ARGV[12])
redis.call('SET', KEYS[2], '1', 'PX', d)
publish(ARGV[13], cjson.encode({n = ARGV[14], s = 'open', r = 'fleet-trip', d = d, i = ARGV[12], v = v, q = tonumber(ARGV[15])}), ARGV[16])
return {2, calls, failures, slow, v, d}
`;

/**
 * Gives back a probe lease this instance got but did not use.
 * KEYS: probe lease. ARGV: holder id. Returns 1 when released.
 */
export const releaseScript: string = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
