-- Segmented indexes (keys.py "Indexes"): the library store.lua, lifecycle.lua and index.lua
-- start with (segments.py puts it in front of them, with SEGMENT_MAX).
--
-- An index (idx:state:<S>, idx:nostate, idx:name:<n>, idx:queue:<q>, idx:worker:<h>) is a
-- directory ZSET, segment id -> the lowest score the segment covers, and its segments, ZSETs
-- member -> score (the task's first_seen) of at most SEGMENT_MAX entries each, so Redis keeps
-- each in its compact listpack encoding (~50 B an entry instead of ~130 B in a skiplist: the
-- four index entries of a task are a third of its memory). Segment i holds exactly the entries
-- whose score is in [its directory score, the next segment's directory score): one directory
-- lookup finds where a score lives, so adding, moving and removing an entry stay O(log n).
-- A segment is named by the script that creates it (seg_prefix .. id .. ':' .. directory).
-- One hash per partition (summary_key) keeps per index "<entries> <newest segment's id> <its
-- directory score> <its entries>": a count of a whole index costs no walk, and an entry newer
-- than the newest segment's start (nearly every write: tasks arrive in time order) finds its
-- segment with that one HGET instead of three directory reads. Each segment's number of
-- entries is also in a hash per index (cards_key: segment id -> entries), so a count over a
-- window reads the cards of the segments inside it in one HMGET. Scores go to Redis as the
-- strings they came as (a Lua number would be cut to 14 digits).
--
-- A segment stores each score negated (`negated`): a listpack is kept in ascending order and a
-- ZADD walks it from the head, parsing every score it passes, so with tasks arriving in time
-- order the newest entry would walk the whole segment; negated, it goes in at the head (half
-- the Redis CPU of an index write). Directories keep the real scores; readers (index.lua) see
-- real scores and bounds.

-- The score (or ZRANGE BYSCORE bound) of the other sign, as a string: exact, no parsing.
local function negated(score)
  if score == '+inf' then return '-inf' end
  if score == '-inf' then return '+inf' end
  local open = ''
  if string.sub(score, 1, 1) == '(' then open, score = '(', string.sub(score, 2) end
  if string.sub(score, 1, 1) == '-' then return open .. string.sub(score, 2) end
  return open .. '-' .. score
end

local function segmented_indexes(seg_prefix, summary_key)
  local cache = {}      -- directory -> the segment last used (valid until a split or removal)
  local cards = {}      -- directory -> segment id -> its entries now (0: gone), written at flush
  local summaries = {}  -- directory -> { size, tail = newest segment or nil, changed }

  local function segment_key(dir, id) return seg_prefix .. id .. ':' .. dir end
  -- ids start with a digit or a sign, so no segment is named "cards"
  local function cards_key(dir) return seg_prefix .. 'cards:' .. dir end

  local function summary_of(dir)
    local m = summaries[dir]
    if m then return m end
    m = { size = 0 }
    local raw = redis.call('HGET', summary_key, dir)
    if raw then
      local size, id, lo_s, card = string.match(raw, '^(%d+) (%S+) (%S+) (%d+)$')
      m.size = tonumber(size)
      m.tail = { id = id, lo = tonumber(lo_s), lo_s = lo_s, card = tonumber(card) }
    end
    summaries[dir] = m
    return m
  end

  local function set_card(dir, id, n)
    local of = cards[dir]
    if not of then of = {}; cards[dir] = of end
    of[id] = n
    local m = summary_of(dir)
    if m.tail and m.tail.id == id then m.tail.card = n; m.changed = true end
  end

  local function resize(dir, n)
    if n ~= 0 then
      local m = summary_of(dir)
      m.size, m.changed = m.size + n, true
    end
  end

  -- The segment whose range holds score s (the first segment when s is below them all), or nil
  -- when the index is empty. { id, key, lo, hi (next segment's score or nil), card }
  local function segment_for(dir, s, s_str)
    local c = cache[dir]
    if c and s >= c.lo and (not c.hi or s < c.hi) then return c end
    local tail = summary_of(dir).tail
    if not tail then return nil end
    if s >= tail.lo then
      c = { id = tail.id, key = segment_key(dir, tail.id), lo = tail.lo, card = tail.card }
      cache[dir] = c
      return c
    end
    local r = redis.call('ZRANGE', dir, s_str, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1,
                         'WITHSCORES')
    if #r == 0 then r = redis.call('ZRANGE', dir, 0, 0, 'WITHSCORES') end
    local nxt = redis.call('ZRANGE', dir, '(' .. r[2], '+inf', 'BYSCORE', 'LIMIT', 0, 1,
                           'WITHSCORES')
    local key = segment_key(dir, r[1])
    c = { id = r[1], key = key, lo = tonumber(r[2]), hi = nxt[2] and tonumber(nxt[2]),
          card = redis.call('ZCARD', key) }
    cache[dir] = c
    return c
  end

  local function new_segment(dir, lo_str)
    local id = lo_str
    while redis.call('EXISTS', segment_key(dir, id)) == 1 do id = id .. "'" end
    redis.call('ZADD', dir, lo_str, id)
    cache[dir] = nil
    local m = summary_of(dir)
    if not m.tail or tonumber(lo_str) > m.tail.lo then
      m.tail, m.changed = { id = id, lo = tonumber(lo_str), lo_s = lo_str, card = 0 }, true
    end
    return id, segment_key(dir, id)
  end

  -- A segment emptied (Redis deleted it) or dropped: out of the directory; the newest segment
  -- is then the one before it.
  local function segment_gone(dir, id)
    redis.call('ZREM', dir, id)
    cache[dir] = nil
    set_card(dir, id, 0)
    local m = summary_of(dir)
    if m.tail and m.tail.id == id then
      local r = redis.call('ZRANGE', dir, -1, -1, 'WITHSCORES')
      m.tail = r[1] and { id = r[1], lo = tonumber(r[2]), lo_s = r[2],
                          card = redis.call('ZCARD', segment_key(dir, r[1])) } or nil
      m.changed = true
    end
  end

  -- Move the upper half of a full segment to a new one, at a score boundary (equal scores stay
  -- together, so a score still has one place). A segment of one score cannot split: it grows.
  -- (Stored scores are negated: the newest entries come first, the lowest real score last.)
  local function split(dir, c)
    local mid = redis.call('ZRANGE', c.key, math.floor(c.card / 2), math.floor(c.card / 2),
                           'WITHSCORES')[2]
    local lowest = redis.call('ZRANGE', c.key, -1, -1, 'WITHSCORES')[2]
    if tonumber(mid) == tonumber(lowest) then
      mid = redis.call('ZRANGE', c.key, '(' .. mid, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, 1,
                       'WITHSCORES')[2]
      if not mid then return end
    end
    -- the entries scored mid and above (real), stored as -mid and below
    local moved = redis.call('ZRANGE', c.key, '-inf', mid, 'BYSCORE', 'WITHSCORES')
    local pairs_ = {}
    for i = 1, #moved, 2 do
      pairs_[#pairs_ + 1] = moved[i + 1]
      pairs_[#pairs_ + 1] = moved[i]
    end
    local id, key = new_segment(dir, negated(mid))
    redis.call('ZADD', key, unpack(pairs_))
    redis.call('ZREMRANGEBYSCORE', c.key, '-inf', mid)
    set_card(dir, id, #moved / 2)
    set_card(dir, c.id, c.card - #moved / 2)
  end

  local function add_to_new(dir, member, s_str)
    local id, key = new_segment(dir, s_str)
    redis.call('ZADD', key, negated(s_str), member)
    set_card(dir, id, 1)
    resize(dir, 1)
  end

  local function add(dir, member, s_str)
    local s = tonumber(s_str)
    local c = segment_for(dir, s, s_str)
    if not c then return add_to_new(dir, member, s_str) end
    if c.card >= SEGMENT_MAX and s > c.lo then
      -- past the newest entry of a full segment (the usual case: tasks arrive in time order):
      -- a new segment, so segments fill up instead of splitting in halves
      local top = -tonumber(redis.call('ZRANGE', c.key, 0, 0, 'WITHSCORES')[2])
      if s > top then return add_to_new(dir, member, s_str) end
    end
    local added = redis.call('ZADD', c.key, negated(s_str), member)
    if s < c.lo then  -- below every segment: the first one now starts at s
      redis.call('ZADD', dir, s_str, c.id)
      c.lo = s
      local m = summary_of(dir)
      if m.tail.id == c.id then m.tail.lo, m.tail.lo_s, m.changed = s, s_str, true end
    end
    c.card = c.card + added
    resize(dir, added)
    set_card(dir, c.id, c.card)
    if c.card > SEGMENT_MAX then
      split(dir, c)
      cache[dir] = nil
    end
  end

  local function remove(dir, member, s_str)
    local c = segment_for(dir, tonumber(s_str), s_str)
    if not c then return end
    local removed = redis.call('ZREM', c.key, member)
    c.card = c.card - removed
    resize(dir, -removed)
    set_card(dir, c.id, c.card)
    if c.card <= 0 then segment_gone(dir, c.id) end
  end

  -- Write what this call changed: the summaries in one HSET, each index's cards in one.
  local function flush()
    local set, gone = {}, {}
    for dir, m in pairs(summaries) do
      if m.changed and m.tail and m.size > 0 then
        set[#set + 1] = dir
        set[#set + 1] = m.size .. ' ' .. m.tail.id .. ' ' .. m.tail.lo_s .. ' ' .. m.tail.card
      elseif m.changed then
        gone[#gone + 1] = dir
      end
    end
    if #set > 0 then redis.call('HSET', summary_key, unpack(set)) end
    if #gone > 0 then redis.call('HDEL', summary_key, unpack(gone)) end
    for dir, of in pairs(cards) do
      local set_cards, gone_cards = {}, {}
      for id, n in pairs(of) do
        if n > 0 then
          set_cards[#set_cards + 1] = id; set_cards[#set_cards + 1] = n
        else
          gone_cards[#gone_cards + 1] = id
        end
      end
      if #set_cards > 0 then redis.call('HSET', cards_key(dir), unpack(set_cards)) end
      if #gone_cards > 0 then redis.call('HDEL', cards_key(dir), unpack(gone_cards)) end
    end
    summaries, cards = {}, {}
  end

  -- Segments of an index in score order (desc = newest first), from the one holding `from`
  -- (a number; nil = the end), as { id, key, lo } tables, in pages of `page`.
  local function each_segment(dir, from, desc, page, visit)
    local r
    if desc then
      local bound = from and string.format('%.17g', from) or '+inf'
      r = redis.call('ZRANGE', dir, bound, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, page,
                     'WITHSCORES')
      if #r == 0 and from then return end
    else
      r = {}
      if from then
        r = redis.call('ZRANGE', dir, string.format('%.17g', from), '-inf', 'BYSCORE', 'REV',
                       'LIMIT', 0, 1, 'WITHSCORES')
      end
      if #r == 0 then r = redis.call('ZRANGE', dir, 0, page - 1, 'WITHSCORES') end
    end
    while #r > 0 do
      local last
      for i = 1, #r, 2 do
        last = r[i + 1]
        if visit({ id = r[i], key = segment_key(dir, r[i]), lo = tonumber(r[i + 1]) }) then
          return
        end
      end
      if desc then
        r = redis.call('ZRANGE', dir, '(' .. last, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, page,
                       'WITHSCORES')
      else
        r = redis.call('ZRANGE', dir, '(' .. last, '+inf', 'BYSCORE', 'LIMIT', 0, page,
                       'WITHSCORES')
      end
    end
  end

  return { add = add, remove = remove, resize = resize, set_card = set_card,
           segment_gone = segment_gone, flush = flush, each_segment = each_segment,
           segment_key = segment_key, cards_key = cards_key, negated = negated,
           size_of = function(dir) return summary_of(dir).size end }
end
