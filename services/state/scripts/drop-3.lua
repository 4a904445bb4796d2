-- Removes a workflow's state entirely.
-- KEYS: meta, data, len.  Returns {0} when there was none, or {1, the version of the deletion}.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {0} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {1, tonumber(v) + 1}
