-- rotate: ARGV 3 now, 4 old digest, 5 new digest, 6 new refresh digest or '', 7 deny-until or ''
-- (the session's access tokens of earlier generations are denylisted until then).
local now, old, new, refresh = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local h = get(old)
if not h then return gone(old, now) end
local e = expiry(h, now)
if e then return {'expired', e, rec(h)} end
if redis.call('HEXISTS', S, new) == 1 then return {'conflict'} end
if refresh ~= '' and redis.call('HEXISTS', R, refresh) == 1 then return {'conflict'} end
redis.call('HDEL', S, old)
redis.call('HSET', I, h.id, new)
redis.call('ZREM', U, um(h.u, old))
redis.call('ZADD', U, 0, um(h.u, new))
redis.call('ZREM', X, old)
redis.call('ZADD', X, int(ms(h.i)), new)
h.g = new
h.e = dec_inc(h.e or '0')
prune(now, 2)
deny(h.id, 'below:' .. h.e, ARGV[7], now)
if refresh ~= '' then
  -- The refresh tokens issued before are forgotten (not remembered as revoked: not theft).
  drop_refresh(h)
  redis.call('HSET', R, refresh, refresh_entry('c', h.id))
  h.rc = refresh
  h.rs = nil
end
put(h)
return {'live', rec(h)}
