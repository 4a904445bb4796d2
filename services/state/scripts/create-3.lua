-- Creates a workflow's state if absent.
-- KEYS: meta, data, len.  ARGV[1] max workflow bytes, ARGV[2] max value bytes, ARGV[3] now (ms).
-- Returns {1 created | 0 existed, version, used, maxw, maxv, create ms, expire ms or '', key count}.
local created = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'v', 0, 'b', 0, 'mw', ARGV[1], 'mv', ARGV[2], 'ct', ARGV[3])
  created = 1
end
local m = redis.call('HMGET', KEYS[1], 'v', 'b', 'mw', 'mv', 'ct', 'et')
return {created, m[1], m[2], m[3], m[4], m[5], m[6] or '', redis.call('HLEN', KEYS[2])}
