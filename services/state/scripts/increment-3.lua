-- Adds to a number (absent counts as 0).
-- KEYS: meta, data, len.  ARGV[1] key, ARGV[2] delta.
-- Returns {1, version, new value JSON} or an error code.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key = ARGV[1]
local old = redis.call('HGET', KEYS[2], key)
local current = 0
if old then
  if json_type(old) ~= 'number' then return {-4, json_type(old)} end
  current = tonumber(old)
end
local n = current + tonumber(ARGV[2])
if n ~= n or n == math.huge or n == -math.huge then return {-5} end
local json = num2json(n)
local err, delta = check_limits(st, key, json, old)
if err then return err end
redis.call('HSET', KEYS[2], key, json)
return {1, commit(st, delta), json}
