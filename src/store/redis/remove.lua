-- remove: ARGV 3 now, 4 session id, 5 reason, 6 deny-until or ''.
local h, dg = by_id(ARGV[4])
if not h then return {'none'} end
drop(dg, h, ARGV[5], ARGV[6], ARGV[3])
return {'ok', rec(h)}
