-- data_set: ARGV 3 now, 4 session id, 5 expected version, 6 new data.
local h = by_id(ARGV[4])
if not h or expiry(h, ARGV[3]) then return {'none'} end
if (h.v or '0') ~= ARGV[5] then return {'retry'} end
h.d = ARGV[6]
h.v = tostring(tonumber(ARGV[5]) + 1)
put(h)
return {'ok'}
