-- rotate: ARGV 3 now, 4 old digest, 5 new digest, 6 new refresh digest or '', 7 deny-until or ''
-- (the session's access tokens of earlier generations are denylisted until then).
local now, old, new, refresh = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local h = get(B .. 's:' .. old)
if not h then return gone(old, now) end
local e = expiry(h, now)
if e then return {'expired', e, rec(h)} end
if redis.call('EXISTS', B .. 's:' .. new) > 0 then return {'conflict'} end
if refresh ~= '' and redis.call('EXISTS', B .. 'r:' .. refresh) > 0 then return {'conflict'} end
redis.call('RENAME', B .. 's:' .. old, B .. 's:' .. new)
local sk = B .. 's:' .. new
redis.call('SET', B .. 'i:' .. h.id, new, 'KEEPTTL')
local uk = B .. 'u:' .. h.u
local seq = redis.call('ZSCORE', uk, old)
redis.call('ZREM', uk, old)
if seq then redis.call('ZADD', uk, seq, new) end
redis.call('ZREM', B .. 'x', old)
redis.call('ZADD', B .. 'x', int(ms(h.i)), new)
h.g = new
h.e = dec_inc(h.e or '0')
deny(h.id, 'below:' .. h.e, ARGV[7], now)
if refresh ~= '' then
  -- The refresh tokens issued before are forgotten (not remembered as revoked: not theft).
  drop_refresh(h)
  new_refresh(refresh, h, sk)
  h.rc = refresh
  h.rs = nil
end
put(sk, h)
return {'live', rec(h)}
