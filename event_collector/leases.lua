-- Renew or release a partition lease only while this collector holds it (leases.py).
-- KEYS[1] P lease:<N>    ARGV[1] "renew" | "release"    ARGV[2] collector id    ARGV[3] TTL (ms)
-- Returns 1 when the lease was this collector's (renewed / released), else 0.
if redis.call("GET", KEYS[1]) ~= ARGV[2] then
  return 0
end
if ARGV[1] == "renew" then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
else
  redis.call("DEL", KEYS[1])
end
return 1
