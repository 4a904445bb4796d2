-- Reads every key at one version.
-- KEYS: meta, data, len.  Returns {-1} or {1, version, k1, v1, k2, v2, ...}.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return {-1} end
local out = {1, v}
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all do out[i + 2] = all[i] end
return out
