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
 * Keys of one breaker share a hash tag (`prefix:{name}:...`) so a cluster keeps them on one slot.
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

/**
 * Publishes one transition.
 * KEYS: state hash, open marker, probe lease.
 * ARGV: to, reason, openMs, instance, kind ('auto' | 'manual'), channel, name, from, sequence
 * (the sender's count of local transitions, echoed in the message).
 * Returns { applied (1|0), version, state now stored, remaining open ms (-1 when none) }.
 *
 * Automatic transitions never override a manual state set elsewhere, a second trip keeps the
 * first opener's period, and a probe result from an instance that does not hold the probe lease
 * cannot close the breaker for everyone.
 */
export const transitionScript: string = `${nextVersion}
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
if to == 'closed' then redis.call('HINCRBY', KEYS[1], 'g', 1) end
if kind == 'manual' or to == 'open' then
  -- an operator's decision, or a fresh open period: any probe lease is void
  redis.call('DEL', KEYS[3])
elseif from == 'half-open' and redis.call('GET', KEYS[3]) == instance then
  redis.call('DEL', KEYS[3])
end
redis.call('PUBLISH', ARGV[6], cjson.encode({n = ARGV[7], s = to, r = reason, d = d, i = instance, v = v, q = tonumber(ARGV[9])}))
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
 * Returns { 1 granted | 0 refused, stored state, remaining open ms }.
 */
export const probeScript: string = `
local st = redis.call('HGET', KEYS[2], 'st')
local pttl = redis.call('PTTL', KEYS[3])
if st == 'isolated' or st == 'disabled' or st == 'metrics-only' or st == 'closed' then
  return {0, st, pttl}
end
if pttl > 0 then return {0, st or '', pttl} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, st or '', pttl} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, st or '', pttl}
end
return {0, st or '', pttl}
`;

/**
 * Adds a batch of outcomes to the fleet-wide window and trips the breaker for everyone when the
 * aggregate crosses the rule. Counts are dropped while the stored state is not closed, and a
 * close starts a fresh generation of buckets, so a recovered breaker starts from zero.
 * KEYS: state hash, open marker.
 * ARGV: 1 bucket key prefix, 2 bucket ms, 3 buckets, 4 successes, 5 failures, 6 slow successes,
 *       7 slow failures, 8 minimum calls, 9 failure rate threshold, 10 slow call rate threshold,
 *       11 failure count (0 = off), 12 open ms, 13 instance, 14 channel, 15 name, 16 sequence.
 * Returns { 0 dropped | 1 counted | 2 tripped, calls, failures, slow calls, version, open ms }.
 */
export const flushScript: string = `${nextVersion}
local st = redis.call('HGET', KEYS[1], 'st')
if st and st ~= 'closed' then return {0, 0, 0, 0, 0, -1} end
local g = redis.call('HGET', KEYS[1], 'g') or '0'
local bucketMs = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local idx = math.floor(now / bucketMs)
local base = ARGV[1] .. g .. ':'
local key = base .. string.format('%d', idx)
local fields = {'s', 'f', 'ss', 'sf'}
for i = 1, 4 do
  local c = tonumber(ARGV[3 + i])
  if c > 0 then redis.call('HINCRBY', key, fields[i], c) end
end
redis.call('PEXPIRE', key, bucketMs * (n + 1))
local s, f, ss, sf = 0, 0, 0, 0
for i = 0, n - 1 do
  local h = redis.call('HMGET', base .. string.format('%d', idx - i), 's', 'f', 'ss', 'sf')
  s = s + tonumber(h[1] or '0')
  f = f + tonumber(h[2] or '0')
  ss = ss + tonumber(h[3] or '0')
  sf = sf + tonumber(h[4] or '0')
end
local calls = s + f + ss + sf
local failures = f + sf
local slow = ss + sf
local trip = false
if calls > 0 and calls >= tonumber(ARGV[8]) then
  if failures / calls >= tonumber(ARGV[9]) then trip = true end
  if slow / calls >= tonumber(ARGV[10]) then trip = true end
  local fc = tonumber(ARGV[11])
  if fc > 0 and failures >= fc then trip = true end
end
if not trip then return {1, calls, failures, slow, 0, -1} end
local v = next_version(KEYS[1])
local d = math.max(1, math.floor(tonumber(ARGV[12])))
redis.call('HSET', KEYS[1], 'st', 'open', 'r', 'fleet-trip', 'i', ARGV[13])
redis.call('SET', KEYS[2], '1', 'PX', d)
redis.call('PUBLISH', ARGV[14], cjson.encode({n = ARGV[15], s = 'open', r = 'fleet-trip', d = d, i = ARGV[13], v = v, q = tonumber(ARGV[16])}))
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
