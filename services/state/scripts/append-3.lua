-- Appends elements to an array (absent counts as []).
-- KEYS: meta, data, len.  ARGV[1] key, ARGV[2] element count, ARGV[3] the elements' JSON joined by ','.
-- Returns {1, version, new length, new value JSON} or an error code.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key, count, joined = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local old = redis.call('HGET', KEYS[2], key)
local json, length
if not old or old == '[]' then
  json, length = '[' .. joined .. ']', count
elseif json_type(old) ~= 'array' then
  return {-4, json_type(old)}
else
  json = string.sub(old, 1, -2) .. ',' .. joined .. ']'
  local known = tonumber(redis.call('HGET', KEYS[3], key))
  if not known then known = each_element(old, function() return false end) end
  length = known + count
end
local err, delta = check_limits(st, key, json, old)
if err then return err end
redis.call('HSET', KEYS[2], key, json)
set_len(key, length)
return {1, commit(st, delta), length, json}
