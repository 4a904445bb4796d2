-- Removes every key, keeping the state and its limits.
-- KEYS: meta, data, len.  Returns {-1}, {0, version} (already empty) or {1, version, keys removed}.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local n = redis.call('HLEN', KEYS[2])
if n == 0 then return {0, st.version} end
redis.call('DEL', KEYS[2], KEYS[3])
return {1, commit(st, -st.used), n}
