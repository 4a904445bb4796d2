-- Writes one key.
-- KEYS: meta, data, len.  ARGV[1] key, ARGV[2] value JSON, ARGV[3] array length or -1.
-- Returns {1, version} or an error code.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key, json = ARGV[1], ARGV[2]
local err, delta = check_limits(st, key, json, redis.call('HGET', KEYS[2], key))
if err then return err end
redis.call('HSET', KEYS[2], key, json)
set_len(key, tonumber(ARGV[3]))
return {1, commit(st, delta)}
