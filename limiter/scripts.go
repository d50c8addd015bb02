package limiter

import "github.com/redis/go-redis/v9"

// The scripts read the clock with TIME, so they need effects replication
// (the default since Redis 5; redis.replicate_commands is kept for older
// servers, as redis_rate does). Times are integer milliseconds; Lua
// numbers are doubles, exact far beyond today's 13-digit epoch values, and
// string.format('%.0f') keeps them out of exponent notation.
const luaNow = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// acquireScript: a shared cooldown in force -> {2, ms left}; else, with
// no in-flight limit (ARGV[1] = 0) -> {1, 0, acct}; else drop expired
// leases and take a slot if one is free -> {1, 0, acct}, or {0, ms until
// the earliest lease expires}. acct is the lowest account limit the
// vendor has stated (the account HASH, see Limiter.observe), 0 if none:
// read in the same step as the slot, so every process rates the call it
// is granted by the lowest limit any process has seen.
//
// KEYS: inflight ZSET, cooldown, account HASH. ARGV: max in flight, lease TTL ms, lease id.
var acquireScript = redis.NewScript(luaNow + `
local cd = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if cd > now then
  return {2, cd - now}
end
local acct = 0
for _, v in ipairs(redis.call('HVALS', KEYS[3])) do
  local n, exp = string.match(v, '^(%d+):(%d+)$')
  n, exp = tonumber(n), tonumber(exp)
  if n and exp and exp > now and n > 0 and (acct == 0 or n < acct) then acct = n end
end
local max = tonumber(ARGV[1])
if max == 0 then
  return {1, 0, acct}
end
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= max then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local left = 0
  if first[2] then left = tonumber(first[2]) - now end
  return {0, left}
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return {1, 0, acct}
`)

// releaseScript removes a lease and, if it was there and ARGV[2] is 1,
// leaves one wake-up on the wake list (trimmed to the in-flight limit, and
// expiring with the lease TTL, so stale wake-ups cost at most a few
// spurious attempts).
//
// KEYS: inflight ZSET, wake LIST. ARGV: lease id, wake 0/1, max in flight, TTL ms.
var releaseScript = redis.NewScript(`
local n = redis.call('ZREM', KEYS[1], ARGV[1])
if n == 1 and ARGV[2] == '1' then
  redis.call('LPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return n
`)

// renewScript sets every given lease's expiry to now+TTL and returns the
// ids that were not there (see Limiter.renew).
//
// KEYS: inflight ZSET. ARGV: TTL ms, lease ids...
var renewScript = redis.NewScript(luaNow + `
local ttl = tonumber(ARGV[1])
local exp = string.format('%.0f', now + ttl)
local back = {}
for i = 2, #ARGV do
  if redis.call('ZADD', KEYS[1], exp, ARGV[i]) == 1 then
    back[#back + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
return back
`)

// cooldownScript extends the shared cooldown to now+ARGV[1] ms unless a
// later end is already set; returns the ms left.
//
// KEYS: cooldown. ARGV: ms.
var cooldownScript = redis.NewScript(luaNow + `
local till = now + tonumber(ARGV[1])
local cd = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cd >= till then
  return cd - now
end
redis.call('SET', KEYS[1], string.format('%.0f', till), 'PX', ARGV[1])
return till - now
`)
