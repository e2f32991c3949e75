-- Operator actions on one task record, atomic with their audit event (see lifecycle.py).
--
-- ARGV[1] = "forget"
--   KEYS[1]  P task:<id> (its timeline and dedup ids live in it)
--   KEYS[2]  P events              KEYS[3]  P idx:nostate
--   KEYS[4..11] P idx:state:<S> for the 8 states (a task is in one of KEYS[3..11]; removing
--   from all is cheap)
--   KEYS[12] P idx:name:<name>     KEYS[13] P idx:queue:<queue> KEYS[14] P idx:worker:<host>
--   KEYS[15] P idx:children:<parent_id>                         KEYS[16] P idx:root:<root_id>
--   ARGV[2] the task's index member (task_ids.index_member); ARGV[3..7] name queue worker parent_id root_id as the caller read them
--   (index keys are built from them, so they must still be current: else "changed", re-read);
--   ARGV[8] "1" to refuse unfinished tasks; ARGV[9] audit event JSON ("" = append none);
--   ARGV[10..] the finished states (events.py READY_STATES).
--   Returns {"ok"} | {"missing"} | {"unfinished", state} | {"changed"}.
--   Counters are history and stay; the task's own idx:children:/idx:root: stay too, because
--   they describe other tasks (the rest of a workflow stays visible under a virtual root).
--
-- ARGV[1] = "annotate"
--   KEYS[1] P task:<id>   KEYS[2] P events
--   ARGV[2] "set" | "del" | "keep" for note, ARGV[3] note,
--   ARGV[4] "set" | "del" | "keep" for labels, ARGV[5] labels JSON, ARGV[6] audit event JSON.
--   Returns {"ok"} | {"missing"}.

local op = ARGV[1]

if op == "forget" then
  local current = redis.call("HMGET", KEYS[1], "state", "name", "queue", "worker",
                             "parent_id", "root_id")
  if redis.call("EXISTS", KEYS[1]) == 0 then
    return {"missing"}
  end
  for i = 2, 6 do
    if (current[i] or "") ~= ARGV[i + 1] then
      return {"changed"}
    end
  end
  local state = current[1] or "PENDING"
  local finished = false
  for i = 10, #ARGV do
    if state == ARGV[i] then finished = true end
  end
  if ARGV[8] == "1" and not finished then
    return {"unfinished", state}
  end
  local member = ARGV[2]
  redis.call("DEL", KEYS[1])
  for i = 3, 16 do
    redis.call("ZREM", KEYS[i], member)
  end
  if ARGV[9] ~= "" then
    redis.call("XADD", KEYS[2], "*", "e", ARGV[9])
  end
  return {"ok"}
end

if op == "annotate" then
  if redis.call("EXISTS", KEYS[1]) == 0 then
    return {"missing"}
  end
  local fields = {{"note", ARGV[2], ARGV[3]}, {"labels", ARGV[4], ARGV[5]}}
  for _, f in ipairs(fields) do
    if f[2] == "set" then
      redis.call("HSET", KEYS[1], f[1], f[3])
    elseif f[2] == "del" then
      redis.call("HDEL", KEYS[1], f[1])
    end
  end
  redis.call("XADD", KEYS[2], "*", "e", ARGV[6])
  return {"ok"}
end

return redis.error_reply("lifecycle.lua: unknown operation " .. tostring(op))
