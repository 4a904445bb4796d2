-- Applies one change of a run atomically (see RunStore.apply), under the caller's token.
-- KEYS[1] = workflow hash, KEYS[2] = steps hash, KEYS[3] = jobs hash, KEYS[4] = events list,
-- KEYS[5] = MAP item pages hash
-- ARGV[1] = token, then five counted groups:
--   n, then n triples (job field "<step>:<index>", attempt, status)   expectations
--   n, then n pairs (field, value)                                     workflow fields
--   n, then n pairs (step id, record JSON)                             steps
--   n, then n pairs (job field, record JSON)                           jobs
--   n, then n event JSON texts                                         events to append
--   n, then n pairs (page field "<step>:<page>", items JSON)           item pages
-- Returns {1, last sequence} when applied, {0, last sequence} when an expectation failed,
-- {-1} when the workflow is unknown, {-2, current token} when the token is stale.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local current = tonumber(redis.call('HGET', KEYS[1], 'token') or '0')
if tonumber(ARGV[1]) ~= current then return {-2, current} end
local i = 2
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local job = redis.call('HGET', KEYS[3], ARGV[i])
  if not job then return {0, redis.call('LLEN', KEYS[4])} end
  local d = cjson.decode(job)
  if tonumber(d.attempt) ~= tonumber(ARGV[i + 1]) or d.status ~= ARGV[i + 2] then
    return {0, redis.call('LLEN', KEYS[4])}
  end
  i = i + 3
end
for group = 1, 3 do
  n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    redis.call('HSET', KEYS[group], ARGV[i], ARGV[i + 1])
    i = i + 2
  end
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('RPUSH', KEYS[4], ARGV[i])
  i = i + 1
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return {1, redis.call('LLEN', KEYS[4])}
