-- list_user: ARGV 3 now, 4 user. The user's live sessions (unordered).
local out = {}
for _, m in ipairs(of_user(ARGV[4])) do
  local h = get(m)
  if not h then
    redis.call('ZREM', U, um(ARGV[4], m))
  elseif not expiry(h, ARGV[3]) then
    out[#out + 1] = rec(h)
  end
end
return out
