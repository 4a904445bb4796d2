-- Takes or renews the right to drive a run (see RunStore.claim).
-- KEYS[1] = the workflow's hash
-- ARGV[1] = owner, ARGV[2] = ttl ms, ARGV[3] = now ms
-- Returns the fencing token, 0 when another owner's claim is live, -1 when unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local m = redis.call('HMGET', KEYS[1], 'owner', 'token', 'claim_until')
local owner = m[1] or ''
local token = tonumber(m[2] or '0')
local until_ms = tonumber(m[3] or '0')
local now = tonumber(ARGV[3])
if owner ~= ARGV[1] then
  if owner ~= '' and until_ms > now then return 0 end
  token = token + 1
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
end
redis.call('HSET', KEYS[1], 'claim_until', now + tonumber(ARGV[2]))
return token
