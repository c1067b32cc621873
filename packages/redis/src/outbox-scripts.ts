/**
 * The Lua scripts of `redisOutbox()`. Each runs atomically, declares every key it touches, and every
 * key carries the queue's hash tag, so a Redis Cluster keeps a queue on one slot.
 *
 * Keys (`{q}` is the queue's name): `S` = `<prefix>:ob:{q}:s` the stream with consumer group `G`;
 * `A` = `:a` a hash entry id -> attempts made; `Q` = `:k:<orderKey>` a list of the stream entries of
 * one ordering key not yet finished, oldest first (absent for writes without a key).
 *
 * @module
 */

/** KEYS S, Q, A; ARGV id, enqueuedAt, data, orderKey ('' for none), attempts already made. */
export const enqueueScript = `
local e = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 't', ARGV[2], 'd', ARGV[3], 'k', ARGV[4])
if ARGV[4] ~= '' then redis.call('RPUSH', KEYS[2], e) end
if tonumber(ARGV[5]) > 0 then redis.call('HSET', KEYS[3], e, ARGV[5]) end
return e`;

/**
 * KEYS S; ARGV group, consumer, minIdleMs, claim count, cursor, read count. Takes over entries
 * pending longer than minIdleMs with any consumer (a dead or stalled one), then reads up to `read
 * count` entries never delivered. Claims do not wait for room: the writes an instance holds may all
 * wait behind a dead instance's, and only a claim frees them. Returns { next cursor, claimed, new }.
 */
export const takeScript = `
local c = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5], 'COUNT', ARGV[4])
local new = {}
if tonumber(ARGV[6]) > 0 then
  local fresh = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[6], 'STREAMS', KEYS[1], '>')
  if fresh then new = fresh[1][2] end
end
return { c[1], c[2], new }`;

/**
 * KEYS S, Q, A; ARGV group, entry, consumer, keyed ('1' or '0'). The gate before a send: -1 when
 * the entry is no longer pending with this consumer (someone took it over, or it is done), -2 when
 * an older write of the same key is not finished; otherwise refreshes the entry's idle time (the
 * lease) and returns the attempt number this send is.
 */
export const beginScript = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return -1 end
if ARGV[4] == '1' then
  local ok = false
  for _ = 1, 100 do
    local head = redis.call('LINDEX', KEYS[2], 0)
    if (not head) or head == ARGV[2] then ok = true break end
    -- A head whose entry is gone from the stream (trimmed by hand) must not block its key forever.
    if #redis.call('XRANGE', KEYS[1], head, head) > 0 then return -2 end
    redis.call('LPOP', KEYS[2])
  end
  if not ok then return -2 end
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, ARGV[2], 'JUSTID')
return redis.call('HINCRBY', KEYS[3], ARGV[2], 1)`;

/**
 * KEYS S, Q, A; ARGV group, entry, consumer, keyed. Finishes an entry (sent, or dead): acknowledged,
 * deleted, off its key's list, its attempt count gone. For a keyed entry, takes the key's next entry
 * over from whichever consumer holds it (that consumer cannot be sending it: it was not the head),
 * so one instance works through a key without waiting for another's poll. Returns that entry
 * (`[id, fields]`) or an empty list.
 */
export const finishScript = `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
if ARGV[4] ~= '1' then return {} end
redis.call('LREM', KEYS[2], 1, ARGV[2])
local nxt = redis.call('LINDEX', KEYS[2], 0)
if not nxt then return {} end
local p = redis.call('XPENDING', KEYS[1], ARGV[1], nxt, nxt, 1)
if #p == 0 then return {} end
local got = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, nxt)
if #got == 0 then return {} end
return got[1]`;

/** KEYS S, A; ARGV entry. A send the breaker refused was not an attempt. */
export const uncountScript = `
if redis.call('HINCRBY', KEYS[2], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1`;

/**
 * KEYS S; ARGV group, consumer, idleMs ('0': renew), then entry ids. For each entry still pending with
 * this consumer: renew resets its idle time (the lease); a release hands it to the consumer
 * "released" with a large idle time, so any instance's next XAUTOCLAIM takes it at once. Returns the
 * entries this consumer no longer holds.
 */
export const holdScript = `
local lost = {}
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then
    lost[#lost + 1] = ARGV[i]
  elseif ARGV[3] == '0' then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    redis.call('XCLAIM', KEYS[1], ARGV[1], 'released', 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
  end
end
return lost`;

/**
 * KEYS S; ARGV group, consumer, idleMs. Deletes consumers of instances that are gone: no pending
 * entries and idle longer than idleMs. Atomic with the check, so no entry is delivered to a
 * consumer between the check and the delete (deleting a consumer drops its pending entries); a live
 * consumer removed this way is created again by its next read.
 */
export const pruneScript = `
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f.name ~= ARGV[2] and f.pending == 0 and f.idle > tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)
    n = n + 1
  end
end
return n`;
