-- remove_expired: ARGV 3 now, 4 batch size. Answers {examined, records, stale}: stale counts
-- the index entries dropped because Redis had already expired their session by its TTL.
local now = ARGV[3]
local xk = B .. 'x'
local cands = redis.call('ZRANGEBYSCORE', xk, '-inf', int(ms(now)), 'LIMIT', 0, ARGV[4])
local out = {}
local stale = 0
for _, dg in ipairs(cands) do
  local h = get(B .. 's:' .. dg)
  if not h then
    redis.call('ZREM', xk, dg)
    stale = stale + 1
  elseif expiry(h, now) then
    drop(dg, h, false, '', now)
    out[#out + 1] = rec(h)
  end
end
return {#cands, out, stale}
