-- Schedules (or with ttl 0 cancels) the removal of a workflow's whole state.
-- KEYS: meta, data, len.  ARGV[1] ttl (ms), ARGV[2] now (ms).
-- Returns {-1} or {1, version, expire ms or ''}.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local ttl = tonumber(ARGV[1])
local et = ''
if ttl > 0 then
  et = tostring(tonumber(ARGV[2]) + ttl)
  redis.call('HSET', KEYS[1], 'et', et)
  for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], et) end
else
  redis.call('HDEL', KEYS[1], 'et')
  for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end
end
return {1, redis.call('HINCRBY', KEYS[1], 'v', 1), et}
