-- Adds a member to an array used as a set (absent counts as []); members compare by value.
-- KEYS: meta, data, len.  ARGV[1] key, ARGV[2] member JSON.
-- Returns {1, version, size, new value JSON}, {0, version, size, value JSON} when already a
-- member, or an error code.
local st = load_meta(KEYS[1])
if not st then return {-1} end
local key, member = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[2], key)
local json, size
if not old or old == '[]' then
  json, size = '[' .. member .. ']', 1
elseif json_type(old) ~= 'array' then
  return {-4, json_type(old)}
else
  local count, found = each_element(old, function(e) return json_equal(e, member) end)
  if found then
    return {0, st.version, tonumber(redis.call('HGET', KEYS[3], key)) or count, old}
  end
  json, size = string.sub(old, 1, -2) .. ',' .. member .. ']', count + 1
end
local err, delta = check_limits(st, key, json, old)
if err then return err end
redis.call('HSET', KEYS[2], key, json)
set_len(key, size)
return {1, commit(st, delta), size, json}
