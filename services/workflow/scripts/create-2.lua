-- Creates a workflow's record unless its id is taken.
-- KEYS[1] = the workflow's hash, KEYS[2] = the set of every workflow id
-- ARGV[1] = workflow id, then field/value pairs of the record
-- Returns 1 when created, 0 when the id is taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'token', 0, 'owner', '', 'claim_until', 0)
redis.call('SADD', KEYS[2], ARGV[1])
return 1
