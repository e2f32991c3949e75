-- Purge a queue on a Redis broker, unless it now holds more than the caller saw.
-- KEYS: the queue's lists, one per priority step (event_collector.broker.priority_lists).
-- ARGV[1]: expected, the most messages the caller agreed to lose.
-- Returns {purged, length}: every list deleted and purged = length when length <= expected;
-- otherwise nothing is touched and purged = 0. One script: no message can slip in between the
-- count and the delete.
local length = 0
for _, key in ipairs(KEYS) do
  length = length + redis.call('LLEN', key)
end
if length > tonumber(ARGV[1]) then
  return {0, length}
end
if length > 0 then
  redis.call('DEL', unpack(KEYS))
end
return {length, length}
