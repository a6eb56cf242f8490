-- remove_user: ARGV 3 now, 4 user, 5 id to keep or '', 6 reason, 7 deny-until or ''.
local out = {}
for _, m in ipairs(of_user(ARGV[4])) do
  local h = get(m)
  if not h then
    redis.call('ZREM', U, um(ARGV[4], m))
  elseif h.id ~= ARGV[5] then
    drop(m, h, ARGV[6], ARGV[7], ARGV[3])
    out[#out + 1] = rec(h)
  end
end
return out
