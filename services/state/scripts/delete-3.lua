-- Removes one key.
-- KEYS: meta, data, len.  ARGV[1] key.  Returns {-1}, {0, version} (absent) or {1, version}.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key = ARGV[1]
local old = redis.call('HGET', KEYS[2], key)
if not old then return {0, st.version} end
redis.call('HDEL', KEYS[2], key)
redis.call('HDEL', KEYS[3], key)
return {1, commit(st, -(#old + #key))}
