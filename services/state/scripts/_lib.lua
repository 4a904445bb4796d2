-- Shared helpers, prepended to every script of this folder by lib/redis/scripts.ts.
-- Every script takes KEYS[1] = meta hash, KEYS[2] = data hash, KEYS[3] = len hash
-- (see ../keys.ts). Values are canonical JSON text made by the service (no whitespace,
-- sorted object keys); numbers written by `increment` are formatted here.
--
-- Return codes shared by all scripts (mapped to errors only in ../redis-store.ts):
--   1  done                       0  nothing to do (no write, version unchanged)
--  -1  the workflow has no state
--  -2  value too large            {-2, value bytes, limit}
--  -3  workflow state too large   {-3, bytes after the write, limit}
--  -4  wrong type                 {-4, type name of the stored value}
--  -5  increment result not a finite number

local function load_meta(meta)
  local m = redis.call('HMGET', meta, 'v', 'b', 'mw', 'mv', 'et')
  if not m[1] then return nil end
  return { version = tonumber(m[1]), used = tonumber(m[2]), maxw = tonumber(m[3]),
           maxv = tonumber(m[4]), et = m[5] }
end

local function json_type(s)
  local c = string.sub(s, 1, 1)
  if c == '"' then return 'string' end
  if c == '[' then return 'array' end
  if c == '{' then return 'object' end
  if c == 't' or c == 'f' then return 'boolean' end
  if c == 'n' then return 'null' end
  return 'number'
end

-- Equal JSON texts; numbers compare by value (increment formats them differently from the service).
local function json_equal(a, b)
  if a == b then return true end
  return json_type(a) == 'number' and json_type(b) == 'number' and tonumber(a) == tonumber(b)
end

-- Checks the per-value and per-workflow limits for `json` replacing `old` (false when absent).
-- Returns an error reply, or nil and the change in used bytes.
local function check_limits(st, key, json, old)
  if #json > st.maxv then return {-2, #json, st.maxv} end
  local delta
  if old then delta = #json - #old else delta = #json + #key end
  if st.used + delta > st.maxw then return {-3, st.used + delta, st.maxw} end
  return nil, delta
end

-- Records a write: used bytes, the version bump, and the scheduled expiry of any new hash.
local function commit(st, delta)
  if delta ~= 0 then redis.call('HINCRBY', KEYS[1], 'b', delta) end
  local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
  if st.et then
    redis.call('PEXPIREAT', KEYS[2], st.et)
    redis.call('PEXPIREAT', KEYS[3], st.et)
  end
  return v
end

local function set_len(key, n)
  if n >= 0 then redis.call('HSET', KEYS[3], key, n) else redis.call('HDEL', KEYS[3], key) end
end

-- Shortest text that reads back as the same double.
local function num2json(n)
  if n == math.floor(n) and math.abs(n) < 1e15 then return string.format('%d', n) end
  for p = 15, 17 do
    local s = string.format('%.' .. p .. 'g', n)
    if tonumber(s) == n then return s end
  end
  return string.format('%.17g', n)
end

-- Calls fn(element_text) for each top-level element of a canonical JSON array text, stopping
-- when fn returns true. Returns the number of elements visited and whether fn stopped it.
local function each_element(s, fn)
  if #s <= 2 then return 0, false end
  local i, start, depth, count = 2, 2, 0, 0
  while true do
    local j = string.find(s, '[%[%]{}",]', i)
    if not j then return count, false end
    local c = string.sub(s, j, j)
    if c == '"' then
      local k = j + 1
      while true do
        local q = string.find(s, '["\\]', k)
        if string.sub(s, q, q) == '\\' then k = q + 2 else i = q + 1; break end
      end
    elseif c == '[' or c == '{' then
      depth = depth + 1; i = j + 1
    elseif c == ']' or c == '}' then
      if depth == 0 then
        count = count + 1
        return count, fn(string.sub(s, start, j - 1)) == true
      end
      depth = depth - 1; i = j + 1
    else
      if depth == 0 then
        count = count + 1
        if fn(string.sub(s, start, j - 1)) == true then return count, true end
        start = j + 1
      end
      i = j + 1
    end
  end
end
