-- rotate_refresh: ARGV 3 now, 4 presented digest, 5 successor digest, 6 sealed successor,
-- 7 now - grace, 8 now - touch interval, 9 now + idle, 10 now + remember-me idle, 11 count,
-- 12 reuse reason, 13 reuse deny-until or '', 14 history length (spent tokens recognised),
-- 15 now + grace.
local now, p, succ = ARGV[3], ARGV[4], ARGV[5]
local r = load_refresh(p)
if not r then return gone(p, now) end
local h, dg = by_id(r.s)
if not h then
  redis.call('HDEL', R, p)
  return gone(p, now)
end
if h.rc == p then
  local e = expiry(h, now)
  if e then return {'expired', e, rec(h)} end
  if redis.call('HEXISTS', R, succ) == 1 then return {'conflict'} end
  local spent = split(h.rs)
  -- Only the token spent last keeps its sealed successor (for replays in the grace window).
  if spent[1] then redis.call('HSET', R, spent[1], refresh_entry('x', h.id)) end
  table.insert(spent, 1, p)
  while #spent > tonumber(ARGV[14]) do
    redis.call('HDEL', R, table.remove(spent))
  end
  redis.call('HSET', R, p, refresh_entry('x', h.id, now, ARGV[6]))
  redis.call('HSET', R, succ, refresh_entry('c', h.id))
  h.rc = succ
  h.rs = table.concat(spent, ',')
  renew(h, now, ARGV[8], ARGV[9], ARGV[10], ARGV[11])
  put(h)
  return {'rotated', rec(h)}
end
local spent = split(h.rs)
-- Spent less than the grace window before or after now (after: by an instance whose clock runs
-- ahead); with a zero window (ARGV[7] == now) never.
if spent[1] == p and r.t and ARGV[7] < now and r.t > ARGV[7] and r.t < ARGV[15] then
  local e = expiry(h, now)
  if e then return {'expired', e, rec(h)} end
  return {'replayed', rec(h), r.z, r.t}
end
for _, s in ipairs(spent) do
  if s == p then
    drop(dg, h, ARGV[12], ARGV[13], now)
    return {'reused', rec(h)}
  end
end
return {'none'}
