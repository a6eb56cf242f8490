-- remove_expired: ARGV 3 now, 4 batch size. Answers {examined, records, stale, pruned}: stale
-- counts the index entries dropped because their session was gone, pruned the remembered
-- revocations and denylist entries removed because their time had passed.
local now = ARGV[3]
local cands = redis.call('ZRANGE', X, '-inf', int(ms(now)), 'BYSCORE', 'LIMIT', 0, ARGV[4])
local out = {}
local stale = 0
for _, dg in ipairs(cands) do
  local h = get(dg)
  if not h then
    redis.call('ZREM', X, dg)
    stale = stale + 1
  elseif expiry(h, now) then
    drop(dg, h, false, '', now)
    out[#out + 1] = rec(h)
  end
end
return {#cands, out, stale, prune(now, tonumber(ARGV[4]))}
