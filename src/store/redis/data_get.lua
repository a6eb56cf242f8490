-- data_get: ARGV 3 now, 4 session id. The data of a live session, and its version.
local h = by_id(ARGV[4])
if not h or expiry(h, ARGV[3]) then return {'none'} end
return {'ok', h.v or '0', h.d or ''}
