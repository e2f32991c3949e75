-- Apply one batch of normalized events to the projections (keys.py) in one atomic call.
--
-- KEYS[1]  the stream the batch's events go to: its partition's P events, or the global one
--          for worker events (keys.py); a call's events are all of one partition, or all global.
-- ARGV[1]  1 = XADD accepted events to the stream, 0 = don't (rebuild replays the stream itself)
-- ARGV[2]  stream MAXLEN (approximate trim, 0 = no trim; stream.py's retention)
-- ARGV[3]  timeline cap (entries per task)
-- ARGV[4]  task TTL once SUCCESS (seconds, 0 = keep)
-- ARGV[5]  task TTL once FAILURE
-- ARGV[6]  task TTL once REVOKED or REJECTED
-- ARGV[7]  task TTL while unfinished (set on the task's first event)
-- ARGV[8]  counter bucket TTLs: minute
-- ARGV[9]  hour
-- ARGV[10] day
-- ARGV[11] worker-event dedup TTL
-- ARGV[12] the events, one MessagePack array of arrays (one argument per batch: packing
--          thousands of small arguments costs the client more than the script costs Redis);
--          each: type, event id, task uuid (or ""), timestamp, hostname, stream entry length,
--          the timeline entry's JSON of small state fields (or "", see keys.py), the task's
--          index member (task_ids.index_member, or ""), then field/value pairs (only the
--          fields the event carries; ``store.py`` builds them).
-- ARGV[13] the stream entries (``e``, binary MessagePack) of the events, concatenated in order;
--          each event's length is in its row ("0" and ARGV[13] empty when not appending).
-- ARGV[14..28] key templates and names (keys.py store_script_templates): a key is its template
--          followed by the variable part: task:<id>, idx:state:<S>, idx:name:<name>,
--          idx:queue:<queue>, idx:worker:<host>, idx:children:<id>, idx:root:<id>,
--          cnt:m:<bucket>, cnt:h:<bucket>, cnt:d:<bucket>, worker:<host>, wdd:<eid>; then the
--          names cnt:total, idx:nostate, workers; ARGV[29..31] idx:fp:<fp>, fail:g:<fp>,
--          fail:exc:<type> and ARGV[32] the name fail:groups; ARGV[33] the partition's index
--          segment prefix and ARGV[34] its index summaries (segments.lua). No key is built
--          from a bare prefix here.
-- Returns { flags, facts... }. flags has one char per event: "1" applied here first, "2" applied
-- here first but not counted (a final kind the task already had: a reconciler's synthetic final
-- event followed by the real one), "0" duplicate, "-" skipped. Then one string per applied
-- task-state event, in order: "<name>\t<queue>\t<ref>" as the task is known after the event,
-- ref = the sent timestamp for task-started (queue wait), the started timestamp for task-failed
-- (its runtime), else "". So metrics labels are exact even on a collector that never saw the
-- task's task-sent event, and it keeps no per-task memory.
--
-- Each task the batch touches is read once (HMGET), folded in memory event by event, and written
-- once at the end (HSET, index moves, TTL): the result is the same as writing after every event.
--
-- Rules (so any arrival order and any duplication gives the same projection):
-- * Timeline: ``_tl`` is the one place a task's event timestamps are kept: the latest
--   timestamp of each kind (sent, received, ...), first_seen and updated are read off it
--   (scan_timeline), never stored twice. Entries stay sorted by (timestamp, event id), so the
--   value does not depend on arrival order; trimming to the cap keeps the newest entry of each
--   kind, so those timestamps survive it.
-- * Dedup: a task event is a duplicate when its id starts a timeline entry ("\n<eid> ") in
--   the task hash's ``_tl``. Events trimmed off a capped timeline keep their id in ``_dd``
--   (task-state events only; a trimmed-then-redelivered progress event is ignored, it could
--   not change the progress anyway). Worker events: SET P wdd:<eid> NX EX.
-- * State: the state is that of the strongest event under one total order:
--     final (SUCCESS > FAILURE > REVOKED)  >  worker states  >  PENDING (task-sent).
--   Among worker states (RECEIVED, STARTED, RETRY, REJECTED) the latest timestamp wins, ties
--   broken by STATE_PRECEDENCE. This is Celery's RETRY special case made order-free: a retried
--   task goes RETRY -> RECEIVED -> STARTED again, and its latest attempt is what it is doing.
--   The event that set the state is always the latest of its kind, so its timestamp is the
--   kind's latest timeline timestamp: nothing extra is stored. ``worker`` is the
--   hostname of that event (not for PENDING: task-sent's hostname is the producer's).
-- * Descriptive fields (name args kwargs queue exchange routing_key priority retries eta expires
--   parent_id root_id) come from task-sent / task-received: the attempt with the highest
--   ``retries`` wins; a field only an older attempt carries fills the gap.
-- * Per-kind fields (result runtime / exception traceback / terminated signum expired /
--   requeue / progress_*) come from the latest event of that kind;
--   a task-retried's exception never replaces a task-failed's.
-- * Counters: every applied task-state event of kind K counts once under "<name>|K" in
--   cnt:total and the minute/hour/day bucket of its own timestamp; a final kind (SUCCESS,
--   FAILURE, REVOKED) counts at most once per task. When the name is not known
--   yet, the increment waits in hidden field ``_pc`` ("K@ts;...") and is applied when the
--   name arrives, so counters are exact in any order.
-- * Failure groups (keys.py "Failure groups"): a task-failed row carries ``fingerprint`` (a
--   task field, so ``idx:fp:<fp>`` moves with the task like any index) and ``_exc`` (its
--   exception type, not stored on the task). A failure counts in its group under the same rule
--   as the FAILURE counter: applied first and the task's first FAILURE, so a duplicate or a
--   reconciler's synthetic event followed by the real one counts once.
-- * Indexes are scored by ``first_seen`` (earliest event timestamp); when an earlier event
--   arrives late, every index entry of the task is re-scored.

local do_xadd = ARGV[1] == '1'
local maxlen = tonumber(ARGV[2])
local tl_max = tonumber(ARGV[3])
local ttl_final = { SUCCESS = tonumber(ARGV[4]), FAILURE = tonumber(ARGV[5]),
                    REVOKED = tonumber(ARGV[6]), REJECTED = tonumber(ARGV[6]) }
local ttl_unfinished = tonumber(ARGV[7])
local bucket_ttl = { m = tonumber(ARGV[8]), h = tonumber(ARGV[9]), d = tonumber(ARGV[10]) }
local wdd_ttl = tonumber(ARGV[11])
local K_STREAM = KEYS[1]
local T_TASK, T_STATE, T_NAME, T_QUEUE, T_WORKER_IDX, T_CHILDREN, T_ROOT = unpack(ARGV, 14, 20)
local T_BUCKET = { m = ARGV[21], h = ARGV[22], d = ARGV[23] }
local T_WORKER, T_WDD = ARGV[24], ARGV[25]
local K_COUNTERS_TOTAL, K_NOSTATE, K_WORKERS = ARGV[26], ARGV[27], ARGV[28]
local T_FP, T_FAIL_GROUP, T_FAIL_EXC = ARGV[29], ARGV[30], ARGV[31]
local K_FAIL_GROUPS = ARGV[32]
local indexes = segmented_indexes(ARGV[33], ARGV[34])

-- KIND (event type -> kind), KIND_CODE (kind -> timeline code) and TL_PROGRESS (task-progress's
-- timeline code) are events.py's TASK_EVENT_KINDS and TIMELINE_CODES, FAILURE_HOUR_SLOTS is
-- keys.py's: store.py puts them in front of this script, so they are written down once.
local FINAL_RANK = { SUCCESS = 3, FAILURE = 2, REVOKED = 1 }
local WORKER_RANK = { STARTED = 4, RECEIVED = 3, REJECTED = 2, RETRY = 1 }
local DESCRIPTIVE = { name = true, args = true, kwargs = true, queue = true, exchange = true,
  routing_key = true, priority = true, retries = true, eta = true, expires = true,
  parent_id = true, root_id = true }
local BUCKETS = { { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } }
local EID_LEN = 12
local TL_ENTRY_MIN = 6 -- "\n<eid> <ts> <code>...": never shorter

local facts = {}         -- one string per applied task-state event (see Returns)
local counters = {}      -- key -> field -> increment, flushed once per batch
local counter_keys = {}  -- key -> bucket code (for TTL)

local bucket_keys = {}   -- minute -> the four counter keys an event of that minute counts in

local function add(key, code, field)
  local c = counters[key]
  if not c then c = {}; counters[key] = c; counter_keys[key] = code end
  c[field] = (c[field] or 0) + 1
end

local function count(name, kind, ts)
  local field = name .. '|' .. kind
  local minute = math.floor(ts / 60)
  local ks = bucket_keys[minute]
  if not ks then
    ks = { K_COUNTERS_TOTAL }
    for i, b in ipairs(BUCKETS) do
      ks[i + 1] = T_BUCKET[b[1]] .. string.format('%d', math.floor(ts / b[2]) * b[2])
    end
    bucket_keys[minute] = ks
  end
  add(ks[1], nil, field)
  for i, b in ipairs(BUCKETS) do add(ks[i + 1], b[1], field) end
end

local function flush_counters()
  for key, fields in pairs(counters) do
    for field, n in pairs(fields) do redis.call('HINCRBY', key, field, n) end
    local ttl = counter_keys[key] and bucket_ttl[counter_keys[key]]
    if ttl and ttl > 0 then redis.call('EXPIRE', key, ttl) end
  end
end

-- (class, time, rank) of a state-setting event; bigger wins.
local function state_key(state, ts)
  if FINAL_RANK[state] then return 2, 0, FINAL_RANK[state] end
  if WORKER_RANK[state] then return 1, ts, WORKER_RANK[state] end
  return 0, ts, 0
end

local function stronger(state, ts, cur_state, cur_ts)
  if not cur_state then return true end
  local a1, a2, a3 = state_key(state, ts)
  local b1, b2, b3 = state_key(cur_state, cur_ts)
  if a1 ~= b1 then return a1 > b1 end
  if a2 ~= b2 then return a2 > b2 end
  return a3 > b3
end

local function has_eid(list, eid)
  if not list then return false end
  local from = 1
  while true do
    local at = string.find(list, eid, from, true)
    if not at then return false end
    if (at - 1) % EID_LEN == 0 then return true end
    from = at + 1
  end
end

-- A task is in exactly one state index (idx:nostate until a task-state event gives it a
-- state): together they list every task, so there is no idx:all to write (keys.py). Each key
-- comes with whether it is segmented (segments.lua) or a plain sorted set. A task without
-- first_seen (not stored yet) is in none.
local function index_keys(t)
  if not t.first_seen then return {} end
  local keys = { { t.state and T_STATE .. t.state or K_NOSTATE, true } }
  if t.name then keys[#keys + 1] = { T_NAME .. t.name, true } end
  if t.queue then keys[#keys + 1] = { T_QUEUE .. t.queue, true } end
  if t.worker then keys[#keys + 1] = { T_WORKER_IDX .. t.worker, true } end
  if t.parent_id then keys[#keys + 1] = { T_CHILDREN .. t.parent_id, false } end
  if t.root_id and t.root_id ~= t.id then keys[#keys + 1] = { T_ROOT .. t.root_id, false } end
  if t.fingerprint then keys[#keys + 1] = { T_FP .. t.fingerprint, false } end
  return keys
end

-- Move the task's index entries from its view before this batch to the one after it. A
-- segmented entry lives where its score says: a new score is a remove and an add.
local INDEXED = { 'state', 'name', 'queue', 'worker', 'parent_id', 'root_id', 'fingerprint',
  'first_seen' }
local function update_indexes(old, now, member)
  local before, after = index_keys(old), index_keys(now)
  local rescored = now.first_seen ~= old.first_seen
  local keep, was = {}, {}
  for _, e in ipairs(after) do keep[e[1]] = true end
  for _, e in ipairs(before) do
    local key, segmented = e[1], e[2]
    was[key] = true
    if segmented and (rescored or not keep[key]) then
      indexes.remove(key, member, old.first_seen)
    elseif not keep[key] then
      redis.call('ZREM', key, member)
    end
  end
  for _, e in ipairs(after) do
    local key, segmented = e[1], e[2]
    if rescored or not was[key] then
      if segmented then
        indexes.add(key, member, now.first_seen)
      else
        redis.call('ZADD', key, now.first_seen, member)
      end
    end
  end
end

-- args/kwargs too: task-received repeats them, and filling a gap from a loaded field folds into
-- the one HSET instead of an HSETNX call each. first_seen, _dd and _tlcut exist only once the
-- timeline was trimmed.
local READ = { 'args', 'kwargs', 'state', 'first_seen', 'name', 'queue', 'worker', 'parent_id',
  'root_id', 'retries', 'fingerprint', '_pc', '_dd', '_tlcut', '_tl' }
-- state -> the timeline code of the kind that sets it (task-sent's state is PENDING)
local STATE_CODE = { PENDING = KIND_CODE.SENT }
for kind, code in pairs(KIND_CODE) do
  if kind ~= 'SENT' then STATE_CODE[kind] = code end
end

local LOADED = {}
for _, f in ipairs(READ) do LOADED[f] = true end

-- Timeline entries are "\n<eid> <ts> <code><host>[\t<json>]"; an upper-case code stands for the
-- same host as the entry before, which is then left out (keys.py).
local TL_ENTRY = '\n([^ ]+) ([^ ]+) ([^\n\t])([^\n\t]*)\t?([^\n]*)'

-- What the task's timeline says: t.kts[code] = the latest timestamp of each kind (as stored
-- text), t.updated = the latest of all, t.first_seen (unless the hash keeps it: trimmed),
-- t.last_host = the host of the newest entry.
local function scan_timeline(t)
  t.kts = {}
  if not t._tl then return end
  local first
  for ts_s, code, rest in string.gmatch(t._tl, '\n[^ ]+ ([^ ]+) ([^\n\t])([^\n\t]*)') do
    local lower = string.lower(code)
    if lower == code then t.last_host = rest end
    t.kts[lower] = ts_s -- sorted: the last of a code is its latest
    first = first or ts_s
    t.updated = ts_s
  end
  t.first_seen = t.first_seen or first
end

local function load_task(tkey, id)
  local v = redis.call('HMGET', tkey, unpack(READ))
  local t = { id = id }
  for i, f in ipairs(READ) do
    if v[i] then t[f] = v[i] end
  end
  scan_timeline(t)
  return t
end

-- Entries of a ``_tl`` value, parsed with their hosts resolved, in stored order.
local function tl_entries(tl)
  local entries, host = {}, nil
  for eid, ts_s, code, rest, extra in string.gmatch(tl, TL_ENTRY) do
    local lower = string.lower(code)
    if lower == code then host = rest end
    entries[#entries + 1] = { ts = tonumber(ts_s), ts_s = ts_s, eid = eid, code = lower,
      host = host, extra = extra }
  end
  return entries
end

local function tl_render(e, prev_host)
  local body = e.host == prev_host and string.upper(e.code) or e.code .. e.host
  local extra = e.extra ~= '' and '\t' .. e.extra or ''
  return '\n' .. e.eid .. ' ' .. e.ts_s .. ' ' .. body .. extra
end

local function tl_join(entries)
  local out, prev = {}, nil
  for i, e in ipairs(entries) do
    out[i] = tl_render(e, prev)
    prev = e.host
  end
  return table.concat(out)
end

-- Add one entry, keeping (timestamp, event id) order. Events mostly arrive in order:
-- appending is the common case.
local function tl_insert(t, e)
  if not t._tl or e.ts > tonumber(t.updated) then
    t._tl = (t._tl or '') .. tl_render(e, t.last_host)
    t.last_host = e.host
    return
  end
  local entries = tl_entries(t._tl)
  entries[#entries + 1] = e
  table.sort(entries, function(a, b)
    if a.ts ~= b.ts then return a.ts < b.ts end
    return a.eid < b.eid
  end)
  t._tl = tl_join(entries)
  t.last_host = entries[#entries].host
end

-- Trim the timeline to its cap, oldest first, but never the newest entry of a kind (the task's
-- per-kind timestamps live there). Trimmed task-state event ids go to _dd (dedup); _tlcut is
-- the newest trimmed timestamp; first_seen is kept in the hash from the first trim on.
local function trim_timeline(c, t)
  local tl = t._tl
  -- every entry is longer than TL_ENTRY_MIN bytes: short timelines need no counting
  if #tl <= tl_max * TL_ENTRY_MIN then return end
  local _, n = string.gsub(tl, '\n', '\n')
  if n <= tl_max then return end
  local entries = tl_entries(tl)
  local newest = {}
  for i, e in ipairs(entries) do newest[e.code] = i end
  local excess = #entries - tl_max
  local dd, cut, kept = t._dd or '', t._tlcut, {}
  for i, e in ipairs(entries) do
    if excess > 0 and newest[e.code] ~= i then
      excess = excess - 1
      if e.code ~= TL_PROGRESS then dd = dd .. e.eid end
      if not cut or e.ts > tonumber(cut) then cut = e.ts_s end
    else
      kept[#kept + 1] = e
    end
  end
  t._tl, t._dd, t._tlcut = tl_join(kept), dd, cut
  c.hset._dd, c.hset._tlcut, c.hset.first_seen = dd, cut, t.first_seen
end

-- Tasks touched by this batch: read once, changed in memory event by event, written once at the
-- end (flush_tasks). A task's events mostly arrive together (a prefork worker flushes
-- received/started/succeeded in one task.multi), so this saves most HMGET/HSET/index calls.
local tasks, task_order = {}, {}

local function task_view(id, member)
  local c = tasks[id]
  if not c then
    local t = load_task(T_TASK .. id, id)
    local before = { id = id, created = not t._tl }
    for _, f in ipairs(INDEXED) do before[f] = t[f] end
    c = { t = t, before = before, hset = {}, hdel = {}, member = member }
    tasks[id] = c
    task_order[#task_order + 1] = id
  end
  return c
end

local function flush_tasks()
  for _, id in ipairs(task_order) do
    local c = tasks[id]
    local t, before, tkey = c.t, c.before, T_TASK .. id
    local flat, dels = {}, {}
    for f, v in pairs(c.hset) do flat[#flat + 1] = f; flat[#flat + 1] = v end
    for f in pairs(c.hdel) do dels[#dels + 1] = f end
    if #flat > 0 then redis.call('HSET', tkey, unpack(flat)) end
    if #dels > 0 then redis.call('HDEL', tkey, unpack(dels)) end
    for _, f in ipairs(INDEXED) do
      if t[f] ~= before[f] then update_indexes(before, t, c.member); break end
    end
    local ttl = t.state ~= before.state and ttl_final[t.state]
    if ttl then
      if ttl > 0 then redis.call('EXPIRE', tkey, ttl) else redis.call('PERSIST', tkey) end
    elseif before.created and ttl_unfinished > 0 then
      redis.call('EXPIRE', tkey, ttl_unfinished)
    end
  end
end

-- Failures counted in this batch, folded into their groups after the tasks are written.
local failures = {}
local late_names = {} -- { fp, name }: names learnt after their task's failure was grouped

local function apply_task(etype, eid, id, member, ts_s, host, tl_extra, fields)
  local ts = tonumber(ts_s)
  local exc_type = fields._exc
  fields._exc = nil
  local kind = KIND[etype]
  local code = kind and KIND_CODE[kind] or TL_PROGRESS
  local tkey = T_TASK .. id
  local c = task_view(id, member)
  local t = c.t
  if t._tl and string.find(t._tl, '\n' .. eid .. ' ', 1, true) then return false end
  if t._tlcut and ts <= tonumber(t._tlcut) then
    -- as old as what was trimmed off the timeline: seen before unless its id is in _dd
    if not kind or has_eid(t._dd, eid) then return false end
  end

  local hset, nx = {}, {}
  local again = false -- a final kind this task already had: applied, not counted again
  local kind_ts = t.kts[code]
  local latest_of_kind = not kind_ts or ts >= tonumber(kind_ts)

  if not t.first_seen or ts < tonumber(t.first_seen) then
    t.first_seen = ts_s
    if t._dd then hset.first_seen = ts_s end -- trimmed: the timeline may not show it
  end

  if kind then
    again = FINAL_RANK[kind] ~= nil and kind_ts ~= nil
    -- descriptive fields: highest retries wins, gaps filled from older attempts
    if kind == 'SENT' or kind == 'RECEIVED' then
      local r = tonumber(fields.retries or '0')
      local newer = r > tonumber(t.retries or '-1')
      if newer then hset.retries = tostring(r) end
      for f, v in pairs(fields) do
        if DESCRIPTIVE[f] and f ~= 'retries' and not (f == 'root_id' and v == id) then
          if newer or (LOADED[f] and not t[f]) then hset[f] = v
          elseif not LOADED[f] then nx[#nx + 1] = f; nx[#nx + 1] = v end
        end
      end
    elseif latest_of_kind then
      local own = true
      if kind == 'RETRY' and t.kts.f then own = false end
      if own then
        for f, v in pairs(fields) do
          if not DESCRIPTIVE[f] then hset[f] = v end
        end
      end
    end
    local state = kind == 'SENT' and 'PENDING' or kind
    local cur_ts = t.state and tonumber(t.kts[STATE_CODE[t.state]] or '0')
    if stronger(state, ts, t.state, cur_ts) then
      hset.state = state
      if kind ~= 'SENT' and host ~= '' then hset.worker = host end
    end
    -- counters
    if kind == 'FAILURE' and not again and fields.fingerprint then
      failures[#failures + 1] = { id = id, fp = fields.fingerprint, exc = exc_type or '',
        message = fields.exception or '', ts = ts, ts_s = ts_s }
    end
    local name = hset.name or t.name
    if name then
      if not again then count(name, kind, ts) end
      if t._pc then
        for k, pts in string.gmatch(t._pc, '(%u+)@([^;]+);') do
          count(name, k, tonumber(pts))
          -- the failure was grouped before its name was known: the group learns it now
          local fp = k == 'FAILURE' and (hset.fingerprint or t.fingerprint)
          if fp then late_names[#late_names + 1] = { fp = fp, name = name } end
        end
        t._pc = nil
        c.hset._pc = nil
        c.hdel._pc = true
      end
    elseif not again then
      hset._pc = (t._pc or '') .. kind .. '@' .. ts_s .. ';'
    end
  elseif latest_of_kind then -- task-progress
    for f, v in pairs(fields) do
      if f == 'progress_current' or f == 'progress_total' then hset[f] = v end
    end
  end

  -- same or older attempt: fields we did not load (exchange, eta, ...) only fill gaps; a newer
  -- value pending in c.hset is written after this and wins, as it should
  for j = 1, #nx, 2 do redis.call('HSETNX', tkey, nx[j], nx[j + 1]) end

  local fact
  if kind then
    local ref = ''
    if kind == 'STARTED' then ref = t.kts.s or ''
    elseif kind == 'FAILURE' then ref = t.kts.b or '' end
    fact = (hset.name or t.name or '') .. '\t' ..
      (hset.queue or t.queue or fields.routing_key or '') .. '\t' .. ref
  end

  tl_insert(t, { ts = ts, ts_s = ts_s, eid = eid, code = code, host = host, extra = tl_extra })
  if latest_of_kind then t.kts[code] = ts_s end
  if not t.updated or ts > tonumber(t.updated) then t.updated = ts_s end
  if tl_max > 0 then trim_timeline(c, t) end
  c.hset._tl = t._tl

  for f, v in pairs(hset) do
    t[f] = v
    c.hset[f] = v
    c.hdel[f] = nil
  end
  if not kind then return '1' end
  facts[#facts + 1] = fact
  return again and '2' or '1'
end

local function apply_worker(etype, eid, host, ts_s, fields)
  if redis.call('SET', T_WDD .. eid, '1', 'NX', 'EX', wdd_ttl) == false then
    return false
  end
  local ts = tonumber(ts_s)
  local wkey = T_WORKER .. host
  local cur = redis.call('HMGET', wkey, '_ts', 'last_heartbeat', 'online_at', 'offline_at')
  local hset = { 'hostname', host }
  if not cur[1] or ts >= tonumber(cur[1]) then
    hset[#hset + 1] = '_ts'; hset[#hset + 1] = ts_s
    hset[#hset + 1] = 'online'; hset[#hset + 1] = etype == 'worker-offline' and '0' or '1'
    for f, v in pairs(fields) do hset[#hset + 1] = f; hset[#hset + 1] = v end
  end
  if etype ~= 'worker-offline' and (not cur[2] or ts > tonumber(cur[2])) then
    hset[#hset + 1] = 'last_heartbeat'; hset[#hset + 1] = ts_s
  end
  if etype == 'worker-online' and (not cur[3] or ts > tonumber(cur[3])) then
    hset[#hset + 1] = 'online_at'; hset[#hset + 1] = ts_s
  end
  if etype == 'worker-offline' and (not cur[4] or ts > tonumber(cur[4])) then
    hset[#hset + 1] = 'offline_at'; hset[#hset + 1] = ts_s
  end
  redis.call('HSET', wkey, unpack(hset))
  redis.call('ZADD', K_WORKERS, 'GT', ts_s, host)
  return true
end

-- One group per fingerprint (keys.py): count, first/last seen, exception type, a sample
-- message, the latest example task, the task names seen, and failures per hour in
-- FAILURE_HOUR_SLOTS slots (field h<hour mod slots> = "<hour start>:<count>", reused a day
-- later). Two calls per group (HMGET, HSET), then one ZADD for all the batch's groups and one
-- SADD per exception type of the new ones. This runs for every failure, and when each
-- failure of a batch is in another group (the worst case) the per-group work is most of what
-- grouping costs: so a group of one name and one hour (the common case) allocates no set of
-- either, and a name the group already has is found without splitting its names. Atomic, so
-- reading the count and writing it back is exact.

-- Whether ``s`` is one of the lines of ``list``.
local function has_line(list, s)
  if list == s then return true end
  local from, last = 1, #list
  while true do
    local at = string.find(list, s, from, true)
    if not at then return false end
    local after = at + #s
    if (at == 1 or string.byte(list, at - 1) == 10)
        and (after > last or string.byte(list, after) == 10) then
      return true
    end
    from = at + 1
  end
end

-- A group's names field with ``adding`` (a set) merged in, or nil when nothing is new; sorted,
-- so the value does not depend on which name failed first.
local function names_with(current, adding)
  local new = false
  for name in pairs(adding) do
    if not current or not has_line(current, name) then new = true; break end
  end
  if not new then return nil end
  local known, names = {}, {}
  for name in string.gmatch(current or '', '[^\n]+') do known[name] = true end
  for name in pairs(adding) do known[name] = true end
  for name in pairs(known) do names[#names + 1] = name end
  table.sort(names)
  return table.concat(names, '\n')
end

-- ``cmd key [flag] args...`` in calls of at most UNPACK_MAX arguments: unpack's limit is
-- Lua's C stack (8,000), and a rebuild's batch may hold thousands of groups.
local UNPACK_MAX = 2000
local function call_chunked(cmd, key, flag, args)
  for from = 1, #args, UNPACK_MAX do
    local to = math.min(from + UNPACK_MAX - 1, #args)
    if flag then redis.call(cmd, key, flag, unpack(args, from, to))
    else redis.call(cmd, key, unpack(args, from, to)) end
  end
end

local SLOT_FIELD = {}
for i = 0, FAILURE_HOUR_SLOTS - 1 do SLOT_FIELD[i] = 'h' .. i end

-- The batch's failures folded per group: g.name / g.hour while there is one of each, the
-- sets g.names / g.hours (hour -> count) from the second.
local function batch_groups()
  local groups, order = {}, {}
  for _, f in ipairs(failures) do
    local g = groups[f.fp]
    local name = tasks[f.id].t.name
    local hour = math.floor(f.ts / 3600)
    if not g then
      groups[f.fp] = { count = 1, first = f.ts, first_s = f.ts_s, last = f.ts, last_s = f.ts_s,
        example = f.id, exc = f.exc, message = f.message, name = name, hour = hour,
        hour_n = 1 }
      order[#order + 1] = f.fp
    else
      g.count = g.count + 1
      if f.ts < g.first then g.first, g.first_s = f.ts, f.ts_s end
      if f.ts > g.last or (f.ts == g.last and f.id > g.example) then
        g.last, g.last_s, g.example, g.message = f.ts, f.ts_s, f.id, f.message
      end
      if name and name ~= g.name then
        if not g.name then g.name = name
        else
          g.names = g.names or { [g.name] = true }
          g.names[name] = true
        end
      end
      if hour == g.hour and not g.hours then g.hour_n = g.hour_n + 1
      else
        g.hours = g.hours or { [g.hour] = g.hour_n }
        g.hours[hour] = (g.hours[hour] or 0) + 1
      end
    end
  end
  return groups, order
end

local function flush_failures()
  local groups, order = batch_groups()
  local last_seen, new_of_type = {}, {}
  for _, fp in ipairs(order) do
    local g, gkey = groups[fp], T_FAIL_GROUP .. fp
    local hours = g.hours or { [g.hour] = g.hour_n }
    local read, slot_hours = { 'first', 'last', 'count', 'names', 'example' }, {}
    for hour in pairs(hours) do
      slot_hours[#slot_hours + 1] = hour
      read[#read + 1] = SLOT_FIELD[hour % FAILURE_HOUR_SLOTS]
    end
    local cur = redis.call('HMGET', gkey, unpack(read))
    local hset = { 'count', tostring((tonumber(cur[3]) or 0) + g.count) }
    if not cur[1] then
      -- a new group (or one the sweep forgot): its type never changes, written once
      hset[3] = 'exception'; hset[4] = g.exc
      local fps = new_of_type[g.exc]
      if not fps then fps = {}; new_of_type[g.exc] = fps end
      fps[#fps + 1] = fp
    end
    if not cur[1] or g.first < tonumber(cur[1]) then
      hset[#hset + 1] = 'first'; hset[#hset + 1] = g.first_s
    end
    -- the latest failure is the example, ties broken by task id: the same in any order
    local cur_last = cur[2] and tonumber(cur[2])
    if not cur_last or g.last > cur_last or (g.last == cur_last and g.example > cur[5]) then
      hset[#hset + 1] = 'last'; hset[#hset + 1] = g.last_s
      hset[#hset + 1] = 'example'; hset[#hset + 1] = g.example
      hset[#hset + 1] = 'message'; hset[#hset + 1] = string.sub(g.message, 1, 200)
    end
    for i, hour in ipairs(slot_hours) do
      -- the slot counts on when it holds this hour ("<hour start>:<count>"), else restarts
      local prefix = string.format('%d', hour * 3600) .. ':'
      local slot, n = cur[5 + i], hours[hour]
      if slot and string.sub(slot, 1, #prefix) == prefix then
        n = n + (tonumber(string.sub(slot, #prefix + 1)) or 0)
      end
      hset[#hset + 1] = read[5 + i]; hset[#hset + 1] = prefix .. n
    end
    local names
    if g.names then names = names_with(cur[4], g.names)
    elseif g.name and not (cur[4] and has_line(cur[4], g.name)) then
      names = names_with(cur[4], { [g.name] = true })
    end
    if names then hset[#hset + 1] = 'names'; hset[#hset + 1] = names end
    redis.call('HSET', gkey, unpack(hset))
    last_seen[#last_seen + 1] = g.last_s
    last_seen[#last_seen + 1] = fp
  end
  call_chunked('ZADD', K_FAIL_GROUPS, 'GT', last_seen)
  for exc, fps in pairs(new_of_type) do call_chunked('SADD', T_FAIL_EXC .. exc, nil, fps) end
end

local out = {}
local stream_blob, stream_at = ARGV[13], 1
for _, ev in ipairs(cmsgpack.unpack(ARGV[12])) do
  local etype, eid, id, ts_s, host = ev[1], ev[2], ev[3], ev[4], ev[5]
  local stream_len, tl_extra, member = tonumber(ev[6]), ev[7], ev[8]
  local stream_entry = string.sub(stream_blob, stream_at, stream_at + stream_len - 1)
  stream_at = stream_at + stream_len
  local fields = {}
  for j = 9, #ev, 2 do fields[ev[j]] = ev[j + 1] end
  local applied
  if KIND[etype] or etype == 'task-progress' then
    applied = id ~= '' and apply_task(etype, eid, id, member, ts_s, host, tl_extra, fields)
  elseif string.sub(etype, 1, 7) == 'worker-' then
    applied = apply_worker(etype, eid, host, ts_s, fields)
  else
    applied = nil -- audit events and anything else: no projection
  end
  if applied == nil then
    out[#out + 1] = '-'
  elseif applied then
    out[#out + 1] = applied == true and '1' or applied
    if do_xadd then
      if maxlen > 0 then
        redis.call('XADD', K_STREAM, 'MAXLEN', '~', maxlen, '*', 'e', stream_entry)
      else
        redis.call('XADD', K_STREAM, '*', 'e', stream_entry)
      end
    end
  else
    out[#out + 1] = '0'
  end
end
flush_tasks()
indexes.flush()
flush_counters()
if #failures > 0 then flush_failures() end
for _, late in ipairs(late_names) do
  local gkey = T_FAIL_GROUP .. late.fp
  if redis.call('EXISTS', gkey) == 1 then -- the sweep may have forgotten the group since
    local names = names_with(redis.call('HGET', gkey, 'names'), { [late.name] = true })
    if names then redis.call('HSET', gkey, 'names', names) end
  end
end
table.insert(facts, 1, table.concat(out))
return facts
