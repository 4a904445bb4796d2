-- Reads one key at a consistent version.
-- KEYS: meta, data, len.  ARGV[1] key.  Returns {-1} or {1, version, value or false}.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {-1} end
return {1, v, redis.call('HGET', KEYS[2], ARGV[1])}
