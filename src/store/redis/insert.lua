-- insert: ARGV 3 now, 4 digest, 5 id, 6 user, 7 created, 8 last seen, 9 idle deadline,
-- 10 absolute deadline, 11 remember-me, 12 request count, 13 metadata, 14 data,
-- 15 refresh digest or '', 16 limit or '', 17 policy (o|l|r), 18 eviction reason,
-- 19 deny-until or '', 20 retention (ms kept after the idle deadline), 21 generation.
local now, dg, id, u, rf = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[15]
if redis.call('HEXISTS', S, dg) == 1 or redis.call('HEXISTS', I, id) == 1
  or (rf ~= '' and redis.call('HEXISTS', R, rf) == 1) then
  return {'conflict'}
end
-- Nothing in the bucket expires by itself: each login removes two sessions of the bucket
-- whose idle deadline passed more than the retention ago, so that, sweeper or not, a bucket
-- never holds more than two sessions beyond its peak of unexpired ones.
collect(now, tonumber(ARGV[20]), 2)
local evicted = {}
-- Without a limit there is nothing to count: the user's sessions are not walked at all.
if ARGV[16] ~= '' then
  local live = {}
  for _, m in ipairs(of_user(u)) do
    local h = get(m)
    if not h then
      redis.call('ZREM', U, um(u, m))
    elseif expiry(h, now) then
      -- Expired: removed as the sweeper would (not remembered as revoked).
      drop(m, h, false, '', now)
    else
      h.pos = tonumber(h.q)
      live[#live + 1] = h
    end
  end
  local max = tonumber(ARGV[16])
  if max < 1 then max = 1 end
  local excess = #live + 1 - max
  if excess > 0 then
    if ARGV[17] == 'r' then return {'limit'} end
    -- crate::policy::select_evictions
    if ARGV[17] == 'o' then
      table.sort(live, function(x, y)
        if x.c ~= y.c then return x.c < y.c end
        return x.pos < y.pos
      end)
    else
      table.sort(live, function(x, y)
        if x.s ~= y.s then return x.s < y.s end
        if x.c ~= y.c then return x.c < y.c end
        return x.pos < y.pos
      end)
    end
    for k = 1, excess do
      drop(live[k].g, live[k], ARGV[18], ARGV[19], now)
      evicted[#evicted + 1] = rec(live[k])
    end
  end
end
local h = {id = id, g = dg, u = u, c = ARGV[7], s = ARGV[8], i = ARGV[9], a = ARGV[10], r = ARGV[11],
  n = ARGV[12], m = ARGV[13], d = ARGV[14], v = '0', q = next_seq(), e = ARGV[21]}
if rf ~= '' then h.rc = rf end
create(h)
return {'ok', evicted}
