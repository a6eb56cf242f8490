-- get: ARGV 3 digest or '', 4 session id or ''.
local h
if ARGV[3] ~= '' then h = get(ARGV[3]) else h = by_id(ARGV[4]) end
if not h then return {'none'} end
return {'ok', rec(h)}
