-- Replaces a value only if it equals the expected one (or, with ARGV[2] = '0', only if absent).
-- KEYS: meta, data, len.  ARGV[1] key, ARGV[2] '1' when an expected value is given else '0',
-- ARGV[3] expected JSON, ARGV[4] new value JSON, ARGV[5] its array length or -1.
-- Returns {1, version} when swapped, {0, version, current JSON or false} when not, or an error code.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key = ARGV[1]
local old = redis.call('HGET', KEYS[2], key)
local match
if ARGV[2] == '0' then match = not old else match = old and json_equal(old, ARGV[3]) end
if not match then return {0, st.version, old} end
local err, delta = check_limits(st, key, ARGV[4], old)
if err then return err end
redis.call('HSET', KEYS[2], key, ARGV[4])
set_len(key, tonumber(ARGV[5]))
return {1, commit(st, delta)}
