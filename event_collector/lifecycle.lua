-- Operator actions on one task record, atomic with their audit event (see lifecycle.py).
--
-- ARGV[1] the operation, ARGV[2] the stream's MAXLEN (approximate, "0" = none: stream.py); the
-- operation's own arguments follow from ARGV[3] (numbered below as OP[n] = ARGV[n + 1], n >= 2).
--
-- ARGV[1] = "forget"
--   KEYS[1]  P task:<id> (its timeline and dedup ids live in it)
--   KEYS[2]  P events              KEYS[3]  P idx:nostate
--   KEYS[4..11] P idx:state:<S> for the 8 states (a task is in one of KEYS[3..11]; removing
--   from all is cheap)
--   KEYS[12] P idx:name:<name>     KEYS[13] P idx:queue:<queue> KEYS[14] P idx:worker:<host>
--   KEYS[15] P idx:children:<parent_id>                         KEYS[16] P idx:root:<root_id>
--   OP[2] the task's index member (task_ids.index_member); OP[3..7] name queue worker
--   parent_id root_id as the caller read them
--   (index keys are built from them, so they must still be current: else "changed", re-read);
--   OP[8] "1" to refuse unfinished tasks; OP[9] audit event JSON ("" = append none);
--   OP[10] the partition's index segment prefix, OP[11] its index summaries (KEYS[3..14]
--   are segmented: segments.lua); OP[12..] the finished states (events.py READY_STATES).
--   Returns {"ok"} | {"missing"} | {"unfinished", state} | {"changed"}.
--   Counters are history and stay; the task's own idx:children:/idx:root: stay too, because
--   they describe other tasks (the rest of a workflow stays visible under a virtual root).
--
-- ARGV[1] = "annotate"
--   KEYS[1] P task:<id>   KEYS[2] P events
--   OP[2] "set" | "del" | "keep" for note, OP[3] note,
--   OP[4] "set" | "del" | "keep" for labels, OP[5] labels JSON, OP[6] audit event JSON.
--   Returns {"ok"} | {"missing"}.

local op = ARGV[1]
local maxlen = tonumber(ARGV[2])
local OP = { op }
for i = 3, #ARGV do OP[i - 1] = ARGV[i] end

local function append(stream, entry)
  if maxlen > 0 then
    redis.call("XADD", stream, "MAXLEN", "~", maxlen, "*", "e", entry)
  else
    redis.call("XADD", stream, "*", "e", entry)
  end
end

if op == "forget" then
  local current = redis.call("HMGET", KEYS[1], "state", "name", "queue", "worker",
                             "parent_id", "root_id", "first_seen", "_tl")
  if redis.call("EXISTS", KEYS[1]) == 0 then
    return {"missing"}
  end
  for i = 2, 6 do
    if (current[i] or "") ~= OP[i + 1] then
      return {"changed"}
    end
  end
  local state = current[1] or "PENDING"
  local finished = false
  for i = 12, #OP do
    if state == OP[i] then finished = true end
  end
  if OP[8] == "1" and not finished then
    return {"unfinished", state}
  end
  local member = OP[2]
  -- the index score: first_seen, kept in the hash once the timeline was trimmed, else the
  -- timeline's first entry's timestamp (store.lua)
  local score = current[7] or string.match(current[8] or "", "^\n[^ ]+ ([^ ]+) ")
  redis.call("DEL", KEYS[1])
  if score then
    local indexes = segmented_indexes(OP[10], OP[11])
    for i = 3, 14 do
      indexes.remove(KEYS[i], member, score)
    end
    indexes.flush()
  end
  for i = 15, 16 do
    redis.call("ZREM", KEYS[i], member)
  end
  if OP[9] ~= "" then
    append(KEYS[2], OP[9])
  end
  return {"ok"}
end

if op == "annotate" then
  if redis.call("EXISTS", KEYS[1]) == 0 then
    return {"missing"}
  end
  local fields = {{"note", OP[2], OP[3]}, {"labels", OP[4], OP[5]}}
  for _, f in ipairs(fields) do
    if f[2] == "set" then
      redis.call("HSET", KEYS[1], f[1], f[3])
    elseif f[2] == "del" then
      redis.call("HDEL", KEYS[1], f[1])
    end
  end
  append(KEYS[2], OP[6])
  return {"ok"}
end

return redis.error_reply("lifecycle.lua: unknown operation " .. tostring(op))
