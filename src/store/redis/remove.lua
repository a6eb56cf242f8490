-- remove: ARGV 3 now, 4 session id or '', 5 reason, 6 deny-until or '', 7 digest (when no id).
local h, dg
if ARGV[4] ~= '' then
  h, dg = by_id(ARGV[4])
else
  dg = ARGV[7]
  h = get(dg)
end
if not h then return {'none'} end
drop(dg, h, ARGV[5], ARGV[6], ARGV[3])
return {'ok', rec(h)}
