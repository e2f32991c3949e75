-- Read side (read.py): the same fields of many task hashes in one call, so a page of 50 rows
-- costs the API one command to build and parse instead of 50. Writes nothing.
-- KEYS  the task hashes (P task:<id>)     ARGV  the fields
local rows = {}
for i, key in ipairs(KEYS) do
  rows[i] = redis.call('HMGET', key, unpack(ARGV))
end
return rows
