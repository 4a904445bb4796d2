-- Creates a workflow's record, with its first events, unless its id is taken.
-- KEYS[1] = the workflow's hash, KEYS[2] = the set of every workflow id
-- ARGV[1] = workflow id, ARGV[2] = n, then n field/value pairs of the record, then the event
-- JSON texts to append to the events list (KEYS[1] with ":wf" replaced by ":events")
-- Returns 1 when created, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = tonumber(ARGV[2])
local i = 3
for _ = 1, n do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', KEYS[1], 'token', 0, 'owner', '', 'claim_until', 0)
redis.call('SADD', KEYS[2], ARGV[1])
local events = string.sub(KEYS[1], 1, -4) .. ':events'
for j = i, #ARGV do
  redis.call('RPUSH', events, ARGV[j])
end
return 1
