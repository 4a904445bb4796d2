-- Describes a workflow's state.
-- KEYS: meta, data, len.  Returns {-1} or {1, version, used, maxw, maxv, create ms, expire ms or '', key count}.
local m = redis.call('HMGET', KEYS[1], 'v', 'b', 'mw', 'mv', 'ct', 'et')
if not m[1] then return {-1} end
return {1, m[1], m[2], m[3], m[4], m[5], m[6] or '', redis.call('HLEN', KEYS[2])}
