-- list_user: ARGV 3 now, 4 user. The user's live sessions (unordered).
local uk = B .. 'u:' .. ARGV[4]
local out = {}
for _, m in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local h = get(B .. 's:' .. m)
  if not h then
    redis.call('ZREM', uk, m)
  elseif not expiry(h, ARGV[3]) then
    out[#out + 1] = rec(h)
  end
end
return out
