-- Shared by every sessionkit script. ARGV[1] is the key base ("<prefix>:{<tag>}:"), ARGV[2]
-- the denylist channel. Timestamps are 20-digit strings (unix nanoseconds + 2^63), so that
-- string order is time order and no precision is lost to Lua's doubles; `ms` turns one into
-- approximate milliseconds for TTLs and sorted-set scores only, never for a decision.
local B = ARGV[1]
local CH = ARGV[2]

-- Timestamp `t` in whole milliseconds, between 1.23 and 0.22 ms below the exact value (the
-- same offset for every timestamp): its first 14 digits, less 2^63 ns in ms rounded up. A
-- number of 14 digits is read exactly and cheaply; one of 20 takes strtod's slow path, which
-- cost a login about 6% of its instructions.
local function ms(t)
  return tonumber(string.sub(t, 1, 14)) - 9223372036855
end

-- Whole number `n` as a command argument: Lua would write it with "%.17g", a costlier
-- conversion than an integer's.
local function int(n)
  return string.format('%d', n)
end

-- Milliseconds from `now` until `t`, at least 1 (for PX / PEXPIRE): one more than the
-- difference of `ms`, so never less than the exact time left.
local function ttl(t, now)
  local v = ms(t) - ms(now) + 1
  if v < 1 then v = 1 end
  return v
end

-- A hash (a refresh token's key) as a table.
local function load(key)
  local a = redis.call('HGETALL', key)
  if #a == 0 then return nil end
  local h = {}
  for i = 1, #a, 2 do h[a[i]] = a[i + 1] end
  return h
end

-- A session is one string (so that a validation is one GET): the fields of F, each followed by
-- a newline, then the user id, which may hold any byte and so comes last. The other fields
-- never hold a newline: digits, digests, session ids, and metadata and data as compact JSON.
-- (codec::record_of_string reads the same layout.)
local F = {'id', 'g', 'c', 's', 'i', 'a', 'r', 'n', 'e', 'v', 'q', 'rc', 'rs', 'm', 'd'}

-- The session stored at `key`, as a table of its fields (rc and rs nil when empty), or nil.
local function get(key)
  local s = redis.call('GET', key)
  if not s then return nil end
  local h, p = {}, 1
  for k = 1, #F do
    local q = string.find(s, '\n', p, true)
    if not q then error('sessionkit: unreadable session record at ' .. key) end
    h[F[k]] = string.sub(s, p, q - 1)
    p = q + 1
  end
  h.u = string.sub(s, p)
  if h.rc == '' then h.rc = nil end
  if h.rs == '' then h.rs = nil end
  return h
end

-- Session `h` in its stored form.
local function encode(h)
  return table.concat({h.id, h.g, h.c, h.s, h.i, h.a, h.r, h.n, h.e or '0', h.v or '0', h.q or '0',
    h.rc or '', h.rs or '', h.m or '', h.d or '', h.u}, '\n')
end

-- Writes session `h` back to `key`, keeping the key's expiry.
local function put(key, h)
  redis.call('SET', key, encode(h), 'KEEPTTL')
end

-- The record as the Rust side reads it: 12 fields in a fixed order. The generation (`e`) is
-- absent from sessions stored before generations existed, and from never-rotated ones: 0.
local function rec(h)
  return {h.id, h.g, h.u, h.c, h.s, h.i, h.a, h.r, h.n, h.m or '', h.d or '', h.e or '0'}
end

-- crate::expiry::check: absolute first, then idle; a deadline has passed when now >= it.
local function expiry(h, now)
  if now >= h.a then return 'absolute' end
  if now >= h.i then return 'idle' end
  return false
end

local function split(s)
  local t = {}
  if s then for w in string.gmatch(s, '[^,]+') do t[#t + 1] = w end end
  return t
end

-- "reason|until" -> reason, until. (A denylist entry's scope, "reason" or "below:<generation>",
-- parses the same way.)
local function parse(v)
  local p = string.find(v, '|', 1, true)
  return string.sub(v, 1, p - 1), string.sub(v, p + 1)
end

-- The answer for a digest with no session: a remembered revocation, or nothing.
local function gone(dg, now)
  local v = redis.call('GET', B .. 'v:' .. dg)
  if v then
    local reason, till = parse(v)
    if now < till then return {'revoked', reason} end
  end
  return {'none'}
end

-- crate::expiry::touch_due and renewed_idle_deadline, on table `h` (the caller writes it back
-- with `put`); the expiry index follows the idle deadline. `due_before` is now - interval; the
-- idle candidates are now + idle (ordinary, remember-me); `count` requests are added.
local function renew(dg, h, now, due_before, idle_ord, idle_rm, count)
  local c = tonumber(count)
  if c and c > 0 then
    h.n = string.format('%.0f', tonumber(h.n) + c)
  end
  if now >= h.s and h.s <= due_before then
    local d = idle_ord
    if h.r == '1' then d = idle_rm end
    if d > h.a then d = h.a end
    if d < h.i then d = h.i end
    h.s = now
    h.i = d
    redis.call('ZADD', B .. 'x', int(ms(d)), dg)
  end
end

-- Decimal string `s` plus one, exactly (a generation may be any u64).
local function dec_inc(s)
  local i = #s
  while i > 0 and string.byte(s, i) == 57 do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #s) end
  return string.sub(s, 1, i - 1) .. string.char(string.byte(s, i) + 1) .. string.rep('0', #s - i)
end

-- Whether decimal string `a` is a larger number than `b` (exact for any length).
local function dec_gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end

-- crate::store::DenyEntry::merge of entry `old` ("scope|until", or nil) with (`scope`, `till`).
-- A scope is a revocation reason (every access token) or "below:<generation>" (those issued
-- for an earlier generation): a revocation outweighs a rotation, the later rotation wins, and
-- between two revocations the one with the later until; the later until is kept.
local function merge(old, scope, till)
  if not old then return scope, till end
  local old_scope, old_till = parse(old)
  local ob = string.match(old_scope, '^below:(%d+)$')
  local nb = string.match(scope, '^below:(%d+)$')
  local s = scope
  if ob and nb then
    if dec_gt(ob, nb) then s = old_scope end
  elseif nb then
    s = old_scope
  elseif not ob and till <= old_till then
    s = old_scope
  end
  if old_till > till then till = old_till end
  return s, till
end

-- Denylists a session's access tokens of `scope` until `till`, merged with the session's entry
-- (never weakening or shortening it), and tells every subscribed instance the merged entry.
local function deny(id, scope, till, now)
  if till == '' or till <= now then return end
  local k = B .. 'd:' .. id
  local old = redis.call('GET', k)
  local s, t = merge(old, scope, till)
  local v = s .. '|' .. t
  if v == old then return end
  redis.call('SET', k, v, 'PX', int(ttl(t, now)))
  redis.call('PUBLISH', CH, id .. '|' .. v)
end

-- Deletes the keys of session `h`'s refresh tokens, current and spent.
local function drop_refresh(h)
  if h.rc then redis.call('DEL', B .. 'r:' .. h.rc) end
  for _, r in ipairs(split(h.rs)) do redis.call('DEL', B .. 'r:' .. r) end
end

-- Stores refresh token `rd` as the current one of session `h` (key `sk`), expiring with it.
local function new_refresh(rd, h, sk)
  redis.call('HSET', B .. 'r:' .. rd, 's', h.id, 'k', 'c')
  local life = redis.call('PTTL', sk)
  if life > 0 then redis.call('PEXPIRE', B .. 'r:' .. rd, int(life)) end
end

-- Writes new session `h` (a table of its fields, `q` from the bucket's sequence) with its
-- refresh tokens (current `rc`, spent `rs`) and index entries, all expiring `life` ms from now
-- (the user's index no sooner than it was to).
local function create(h, life)
  local px = int(life)
  redis.call('SET', B .. 's:' .. h.g, encode(h), 'PX', px)
  if h.rc then
    redis.call('HSET', B .. 'r:' .. h.rc, 's', h.id, 'k', 'c')
    redis.call('PEXPIRE', B .. 'r:' .. h.rc, px)
  end
  for _, r in ipairs(split(h.rs)) do
    redis.call('HSET', B .. 'r:' .. r, 's', h.id, 'k', 'x')
    redis.call('PEXPIRE', B .. 'r:' .. r, px)
  end
  redis.call('SET', B .. 'i:' .. h.id, h.g, 'PX', px)
  local uk = B .. 'u:' .. h.u
  redis.call('ZADD', uk, int(ms(h.a)), h.g)
  if redis.call('PTTL', uk) < life then redis.call('PEXPIRE', uk, px) end
  redis.call('ZADD', B .. 'x', int(ms(h.i)), h.g)
end

-- Removes a session with every index entry and refresh token; with a reason, remembers the
-- revocation until the absolute deadline and denylists its access tokens until `till`.
-- The denylist entry and the remembered revocations are written first: while a Cluster
-- migrates this bucket's slot, Redis refuses a script's access to a key not (or no longer)
-- on this node, and stopped there, a revocation must have denied more, never removed the
-- session without denying its access tokens.
local function drop(dg, h, reason, till, now)
  if reason then
    deny(h.id, reason, till, now)
    if h.a > now then
      -- Remembered for the session token, its current refresh token and the one spent last.
      local tomb, life = reason .. '|' .. h.a, int(ttl(h.a, now))
      redis.call('SET', B .. 'v:' .. dg, tomb, 'PX', life)
      if h.rc then redis.call('SET', B .. 'v:' .. h.rc, tomb, 'PX', life) end
      local last = split(h.rs)[1]
      if last then redis.call('SET', B .. 'v:' .. last, tomb, 'PX', life) end
    end
  end
  redis.call('DEL', B .. 's:' .. dg, B .. 'i:' .. h.id)
  redis.call('ZREM', B .. 'u:' .. h.u, dg)
  redis.call('ZREM', B .. 'x', dg)
  drop_refresh(h)
end

-- The session with public id `id`, and its digest.
local function by_id(id)
  local dg = redis.call('GET', B .. 'i:' .. id)
  if not dg then return nil, nil end
  local h = get(B .. 's:' .. dg)
  if not h then
    redis.call('DEL', B .. 'i:' .. id)
    return nil, nil
  end
  return h, dg
end
