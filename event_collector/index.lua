-- Reads and upkeep of segmented indexes (segments.lua, segments.py), for one partition a call.
--
-- KEYS     index directories (all of one partition: one hash slot)
-- ARGV[1]  the operation, ARGV[2] the partition's segment prefix, ARGV[3] its index summaries
--
-- "range" max min limit order   per index up to `limit` entries with min <= score <= max
--          (ZRANGE BYSCORE bounds: "(x", "+inf", ...), order "desc" (newest first) or "asc";
--          returns one flat { member, score, ... } list per index
-- "count" min max                per index the number of entries in the range
-- "trim" cutoff                  drop every entry scored below cutoff; returns how many
-- "remove" member score ...      remove each member (scored as given) from every index
-- "add" member score ...         add each member to every index (repartition, migration)
-- "page" after max               the first index's segments after the one starting at
--          `after` ("" = from the start), whole, until `max` entries: { last segment's start
--          or "", member, score, ... } (the retention sweep's walk)
-- "drop"                         delete the indexes with their segments; returns the entries
-- "plain"                        per index 1 when it is a plain sorted set of tasks (written
--          before indexes were segmented: its first member names no segment), else 0

local op, indexes = ARGV[1], segmented_indexes(ARGV[2], ARGV[3])
local negated = indexes.negated  -- segments store scores negated (segments.lua)

-- A segment's ZRANGE ... WITHSCORES reply appended to `out` with real scores, in the order
-- given (or reversed).
local function append_real(out, r, reverse)
  local from, to, step = 1, #r - 1, 2
  if reverse then from, to, step = #r - 1, 1, -2 end
  for i = from, to, step do
    out[#out + 1] = r[i]
    out[#out + 1] = negated(r[i + 1])
  end
end

local function number(bound)
  if bound == '+inf' then return math.huge end
  if bound == '-inf' then return -math.huge end
  return tonumber((string.gsub(bound, '^%(', '')))
end

local function finite(n)
  if n == math.huge or n == -math.huge then return nil end
  return n
end

-- Up to `need` entries of one segment between two stored (negated) bounds, `rev` = walking the
-- stored order backwards, with equal scores in the member order one sorted set of real scores
-- gives (read.py's cursor counts on it): descending members when newest first. The stored order
-- has them the other way round, so each run of equal scores is flipped, and a run the limit
-- cuts is read whole first (a score lives in one segment).
local function segment_slice(key, from_b, to_b, rev, need)
  local r
  if rev then
    r = redis.call('ZRANGE', key, from_b, to_b, 'BYSCORE', 'REV', 'LIMIT', 0, need + 1,
                   'WITHSCORES')
  else
    r = redis.call('ZRANGE', key, from_b, to_b, 'BYSCORE', 'LIMIT', 0, need + 1, 'WITHSCORES')
  end
  if #r > 2 * need and r[2 * need + 2] == r[2 * need] then
    local cut = r[2 * need]
    local run = redis.call('ZRANGE', key, cut, cut, 'BYSCORE', 'WITHSCORES')
    local whole = {}
    for i = 1, #r, 2 do
      if r[i + 1] ~= cut then whole[#whole + 1] = r[i]; whole[#whole + 1] = r[i + 1] end
    end
    local from, to, step = 1, #run - 1, 2
    if rev then from, to, step = #run - 1, 1, -2 end
    for i = from, to, step do whole[#whole + 1] = run[i]; whole[#whole + 1] = run[i + 1] end
    r = whole
  end
  local flipped, at = {}, 1
  while at <= #r do
    local last = at
    while last + 2 <= #r and r[last + 3] == r[at + 1] do last = last + 2 end
    for i = last, at, -2 do flipped[#flipped + 1] = r[i]; flipped[#flipped + 1] = r[i + 1] end
    at = last + 2
  end
  for i = #flipped, 2 * need + 1, -1 do flipped[i] = nil end
  return flipped
end

local function range(dir, max_s, min_s, limit, desc)
  local out, need = {}, limit
  local max_n, min_n = number(max_s), number(min_s)
  indexes.each_segment(dir, finite(desc and max_n or min_n), desc, 16, function(seg)
    local r
    if desc then  -- newest first: the stored (negated) order
      r = segment_slice(seg.key, negated(max_s), negated(min_s), false, need)
    else
      if seg.lo > max_n then return true end
      r = segment_slice(seg.key, negated(min_s), negated(max_s), true, need)
    end
    append_real(out, r)
    need = need - #r / 2
    return need <= 0 or (desc and seg.lo <= min_n)
  end)
  return out
end

-- The entries of segments `ids` of an index, from their kept cards (HMGET in chunks: Lua's
-- unpack takes at most a few thousand values).
local function sum_cards(dir, ids)
  local total = 0
  for at = 1, #ids, 4000 do
    local chunk = { unpack(ids, at, math.min(at + 3999, #ids)) }
    for _, n in ipairs(redis.call('HMGET', indexes.cards_key(dir), unpack(chunk))) do
      total = total + (tonumber(n) or 0)
    end
  end
  return total
end

-- The segment holding min and the last one starting at or before max may reach outside the
-- window: ZCOUNT. Every segment starting after min and before the last ends where the next
-- one starts, inside the window: its kept card. Three calls and one HMGET whatever the window.
local function count_walking(dir, min_s, max_s)
  local min_n, total = number(min_s), 0
  local lower = '-inf'
  if min_n ~= -math.huge then
    local at = string.format('%.17g', min_n)
    local first = redis.call('ZRANGE', dir, at, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
    if first then
      total = redis.call('ZCOUNT', indexes.segment_key(dir, first), negated(max_s),
                         negated(min_s))
    end
    lower = '(' .. at
  end
  local inner = redis.call('ZRANGE', dir, lower, max_s, 'BYSCORE')
  if #inner == 0 then return total end
  local last = table.remove(inner)
  total = total + redis.call('ZCOUNT', indexes.segment_key(dir, last), negated(max_s),
                             negated(min_s))
  return total + sum_cards(dir, inner)
end

-- The bound that takes in exactly what `bound` leaves out ("x" <-> "(x").
local function other_side(bound)
  if string.sub(bound, 1, 1) == '(' then return string.sub(bound, 2) end
  return '(' .. bound
end

-- A window over most of an index is counted as the whole index (its kept size) less what lies
-- outside it: a count walks at most half of the segments.
local function count(dir, min_s, max_s)
  local size = indexes.size_of(dir)
  if min_s == '-inf' and max_s == '+inf' then return size end
  if redis.call('ZCOUNT', dir, min_s, max_s) * 2 <= redis.call('ZCARD', dir) then
    return count_walking(dir, min_s, max_s)
  end
  local below = min_s == '-inf' and 0 or count_walking(dir, '-inf', other_side(min_s))
  local above = max_s == '+inf' and 0 or count_walking(dir, other_side(max_s), '+inf')
  return size - below - above
end

local function trim(dir, cutoff_s)
  local cutoff, removed, prev = tonumber(cutoff_s), 0, nil
  local function cut(seg, whole)
    local n
    if whole then
      n = redis.call('ZCARD', seg.key)
      redis.call('DEL', seg.key)
    else
      n = redis.call('ZREMRANGEBYSCORE', seg.key, negated('(' .. cutoff_s), '+inf')
    end
    local left = whole and 0 or redis.call('ZCARD', seg.key)
    if left == 0 then indexes.segment_gone(dir, seg.id) else indexes.set_card(dir, seg.id, left) end
    removed = removed + n
  end
  indexes.each_segment(dir, nil, false, 64, function(seg)
    if prev then
      if seg.lo > cutoff then cut(prev, false); prev = nil; return true end
      cut(prev, true)  -- its entries are below the next start, itself <= cutoff
    end
    prev = nil
    if seg.lo >= cutoff then return true end
    prev = seg
  end)
  if prev then cut(prev, false) end
  indexes.resize(dir, -removed)
  return removed
end

local out = {}
if op == 'range' then
  local limit, desc = tonumber(ARGV[6]), ARGV[7] == 'desc'
  for i, dir in ipairs(KEYS) do out[i] = range(dir, ARGV[4], ARGV[5], limit, desc) end
elseif op == 'count' then
  for i, dir in ipairs(KEYS) do out[i] = count(dir, ARGV[4], ARGV[5]) end
elseif op == 'trim' then
  out = 0
  for _, dir in ipairs(KEYS) do out = out + trim(dir, ARGV[4]) end
elseif op == 'remove' or op == 'add' then
  local apply = op == 'add' and indexes.add or indexes.remove
  for j = 4, #ARGV, 2 do
    for _, dir in ipairs(KEYS) do apply(dir, ARGV[j], ARGV[j + 1]) end
  end
elseif op == 'page' then
  local after, max = ARGV[4], tonumber(ARGV[5])
  out[1] = ''
  indexes.each_segment(KEYS[1], after ~= '' and tonumber(after) or nil, false, 16,
    function(seg)
      if after ~= '' and seg.lo <= tonumber(after) then return false end
      append_real(out, redis.call('ZRANGE', seg.key, 0, -1, 'WITHSCORES'), true)
      out[1] = string.format('%.17g', seg.lo)
      return #out - 1 >= max * 2
    end)
elseif op == 'drop' then
  out = 0
  for _, dir in ipairs(KEYS) do
    indexes.each_segment(dir, nil, false, 64, function(seg)
      out = out + redis.call('ZCARD', seg.key)
      redis.call('DEL', seg.key)
    end)
    redis.call('DEL', dir, indexes.cards_key(dir))
    redis.call('HDEL', ARGV[3], dir)
  end
elseif op == 'plain' then
  for i, dir in ipairs(KEYS) do
    local first = redis.call('ZRANGE', dir, 0, 0)[1]
    out[i] = first and redis.call('EXISTS', indexes.segment_key(dir, first)) == 0 and 1 or 0
  end
else
  return redis.error_reply('index.lua: unknown operation ' .. tostring(op))
end
indexes.flush()
return out
