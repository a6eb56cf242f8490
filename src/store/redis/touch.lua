-- touch: ARGV 3 now, 4 digest, 5 now - touch interval, 6 now + idle, 7 now + remember-me idle,
-- 8 how many requests to add to the count (those an instance counted since its last renewal).
local now, dg = ARGV[3], ARGV[4]
local h = get(dg)
if not h then return gone(dg, now) end
local e = expiry(h, now)
if e then return {'expired', e, rec(h)} end
renew(h, now, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
put(h)
return {'live', rec(h)}
