-- Merges entries into the state, all or nothing.
-- KEYS: meta, data, len.  ARGV: key, value JSON, array length or -1, repeated.
-- Returns {1, version} or an error code (the first entry over a limit; nothing written).
local st = load_meta(KEYS[1])
if not st then return {-1} end
local total = 0
for i = 1, #ARGV, 3 do
  local key, json = ARGV[i], ARGV[i + 1]
  local err, delta = check_limits(st, key, json, redis.call('HGET', KEYS[2], key))
  if err then return err end
  total = total + delta
  if st.used + total > st.maxw then return {-3, st.used + total, st.maxw} end
end
for i = 1, #ARGV, 3 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  set_len(ARGV[i], tonumber(ARGV[i + 2]))
end
return {1, commit(st, total)}
