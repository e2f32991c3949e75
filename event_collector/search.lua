-- Read side (read.py, ``GET /tasks?q=``): the listing fields of the task hashes whose args,
-- kwargs, result or exception contain a text, in one call, so a search moves only the rows it
-- finds over the wire. Case-insensitive (ASCII). Writes nothing.
-- KEYS     the task hashes (P task:<id>)
-- ARGV[1]  the text, lower-case
-- ARGV[2…] the listing fields to return
-- Returns one entry per key: the fields' values when the task matches, else an empty array.
local needle = ARGV[1]
local fields = { unpack(ARGV, 2) }
local rows = {}
for i, key in ipairs(KEYS) do
  local row = {}
  for _, text in ipairs(redis.call('HMGET', key, 'args', 'kwargs', 'result', 'exception')) do
    if text and string.find(string.lower(text), needle, 1, true) then
      row = redis.call('HMGET', key, unpack(fields))
      break
    end
  end
  rows[i] = row
end
return rows
