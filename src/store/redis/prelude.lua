-- Shared by every sessionkit script. KEYS are the nine keys of one bucket, every key a script
-- may touch (see the key layout in mod.rs); ARGV[1] is the bucket's key base
-- ("<prefix>:{b<n>}:", for messages only), ARGV[2] the denylist channel. Timestamps are
-- 20-digit strings (unix nanoseconds + 2^63), so that string order is time order and no
-- precision is lost to Lua's doubles; `ms` turns one into approximate milliseconds for
-- sorted-set scores only, never for a decision.
local S, I, U, R, V, D, X, Y, Q = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
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

-- A session is one string (so that a validation is one HGET): the fields of F, each followed by
-- a newline, then the user id, which may hold any byte and so comes last. The other fields
-- never hold a newline: digits, digests, session ids, and metadata and data as compact JSON.
-- (codec::record_of_string reads the same layout.)
local F = {'id', 'g', 'c', 's', 'i', 'a', 'r', 'n', 'e', 'v', 'q', 'rc', 'rs', 'm', 'd'}

-- Session string `s` as a table of its fields (rc and rs nil when empty).
local function decode(s)
  local h, p = {}, 1
  for k = 1, #F do
    local q = string.find(s, '\n', p, true)
    if not q then error('sessionkit: unreadable session record in ' .. B .. 's') end
    h[F[k]] = string.sub(s, p, q - 1)
    p = q + 1
  end
  h.u = string.sub(s, p)
  if h.rc == '' then h.rc = nil end
  if h.rs == '' then h.rs = nil end
  return h
end

-- The session of digest `dg`, as a table of its fields, or nil.
local function get(dg)
  local s = redis.call('HGET', S, dg)
  if not s then return nil end
  return decode(s)
end

-- Session `h` in its stored form.
local function encode(h)
  return table.concat({h.id, h.g, h.c, h.s, h.i, h.a, h.r, h.n, h.e or '0', h.v or '0', h.q or '0',
    h.rc or '', h.rs or '', h.m or '', h.d or '', h.u}, '\n')
end

-- Writes session `h` back under its digest.
local function put(h)
  redis.call('HSET', S, h.g, encode(h))
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

-- The member of the user index U for user `u`'s session `dg`: the user id's length (8 digits),
-- the id, the digest. All members score 0, so the user's sessions are one lexical range.
local function um(u, dg)
  return string.format('%08d', #u) .. u .. dg
end

-- The digests of user `u`'s sessions, from the user index.
local function of_user(u)
  local p = string.format('%08d', #u) .. u
  local out = {}
  for _, m in ipairs(redis.call('ZRANGE', U, '[' .. p, '(' .. p .. '\255', 'BYLEX')) do
    out[#out + 1] = string.sub(m, #p + 1)
  end
  return out
end

-- Removes up to `n` entries of V and D whose time has passed (their index Y is scored by
-- until), and answers how many: a revocation or rotation, which may add entries, calls this
-- first, so expired ones cannot pile up (the sweeper removes the rest).
local function prune(now, n)
  local due = redis.call('ZRANGE', Y, '-inf', '(' .. int(ms(now)), 'BYSCORE', 'LIMIT', 0, n)
  for _, m in ipairs(due) do
    if string.sub(m, 1, 1) == 'v' then
      redis.call('HDEL', V, string.sub(m, 2))
    else
      redis.call('HDEL', D, string.sub(m, 2))
    end
    redis.call('ZREM', Y, m)
  end
  return #due
end

-- Remembers the revocation `v` ("reason|until") of the token digests `dgs` until `till`.
local function tomb(dgs, v, till)
  local fields, members, score = {}, {}, int(ms(till))
  for _, dg in ipairs(dgs) do
    fields[#fields + 1] = dg
    fields[#fields + 1] = v
    members[#members + 1] = score
    members[#members + 1] = 'v' .. dg
  end
  redis.call('HSET', V, unpack(fields))
  redis.call('ZADD', Y, unpack(members))
end

-- The answer for a digest with no session: a remembered revocation, or nothing.
local function gone(dg, now)
  local v = redis.call('HGET', V, dg)
  if v then
    local reason, till = parse(v)
    if now < till then return {'revoked', reason} end
  end
  return {'none'}
end

-- crate::expiry::touch_due and renewed_idle_deadline, on table `h` (the caller writes it back
-- with `put`); the expiry index follows the idle deadline. `due_before` is now - interval; the
-- idle candidates are now + idle (ordinary, remember-me); `count` requests are added.
local function renew(h, now, due_before, idle_ord, idle_rm, count)
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
    redis.call('ZADD', X, int(ms(d)), h.g)
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
-- (never weakening or shortening it; one whose time has passed counts as none), and tells
-- every subscribed instance the merged entry. (The caller prunes: it may add an entry.)
local function deny(id, scope, till, now)
  if till == '' or till <= now then return end
  local old = redis.call('HGET', D, id)
  if old then
    local _, old_till = parse(old)
    if old_till <= now then old = nil end
  end
  local s, t = merge(old, scope, till)
  local v = s .. '|' .. t
  if v == old then return end
  redis.call('HSET', D, id, v)
  redis.call('ZADD', Y, int(ms(t)), 'd' .. id)
  redis.call('PUBLISH', CH, id .. '|' .. v)
end

-- A refresh token's entry in R: its kind ('c' current, 'x' spent), session id, when it was
-- spent and its sealed successor (the last two only for the token spent last), each ended by
-- a newline but the sealed successor, which may hold any byte.
local function refresh_entry(k, s, t, z)
  return k .. '\n' .. s .. '\n' .. (t or '') .. '\n' .. (z or '')
end

-- The refresh token of digest `rd`: {k, s, t, z} (t and z nil when absent), or nil.
local function load_refresh(rd)
  local v = redis.call('HGET', R, rd)
  if not v then return nil end
  local a = string.find(v, '\n', 1, true)
  local b = a and string.find(v, '\n', a + 1, true)
  local c = b and string.find(v, '\n', b + 1, true)
  if not c then error('sessionkit: unreadable refresh token in ' .. B .. 'r') end
  local r = {k = string.sub(v, 1, a - 1), s = string.sub(v, a + 1, b - 1)}
  if c > b + 1 then
    r.t = string.sub(v, b + 1, c - 1)
    r.z = string.sub(v, c + 1)
  end
  return r
end

-- Deletes session `h`'s refresh tokens, current and spent.
local function drop_refresh(h)
  local all = split(h.rs)
  if h.rc then all[#all + 1] = h.rc end
  if #all > 0 then redis.call('HDEL', R, unpack(all)) end
end

-- The bucket's next creation sequence number. The first also gives each other key of the
-- bucket a placeholder entry, '' (never a digest, a session id or a user index member; scored
-- +inf where scores are deadlines, 0 in the user index), so that from then on every key
-- exists and none is emptied, and so deleted, while a script runs: while a Cluster migrates
-- the bucket's slot, Redis refuses a script whose keys the master does not all hold, and
-- midway, any command on a key it does not hold.
local function next_seq()
  local q = redis.call('INCR', Q)
  if q == 1 then
    redis.call('HSET', S, '', '')
    redis.call('HSET', I, '', '')
    redis.call('HSET', R, '', '')
    redis.call('HSET', V, '', '')
    redis.call('HSET', D, '', '')
    redis.call('ZADD', U, 0, '')
    redis.call('ZADD', X, '+inf', '')
    redis.call('ZADD', Y, '+inf', '')
  end
  return q
end

-- Writes new session `h` (a table of its fields, `q` from the bucket's sequence) with its
-- refresh tokens (current `rc`, spent `rs`) and index entries.
local function create(h)
  redis.call('HSET', S, h.g, encode(h))
  if h.rc then redis.call('HSET', R, h.rc, refresh_entry('c', h.id)) end
  for _, r in ipairs(split(h.rs)) do
    redis.call('HSET', R, r, refresh_entry('x', h.id))
  end
  redis.call('HSET', I, h.id, h.g)
  redis.call('ZADD', U, 0, um(h.u, h.g))
  redis.call('ZADD', X, int(ms(h.i)), h.g)
end

-- Removes a session with every index entry and refresh token; with a reason, remembers the
-- revocation until the absolute deadline and denylists its access tokens until `till`.
local function drop(dg, h, reason, till, now)
  if reason then
    -- At most four entries added (a denylist entry and three revocations), five pruned.
    prune(now, 5)
    deny(h.id, reason, till, now)
    if h.a > now then
      -- Remembered for the session token, its current refresh token and the one spent last.
      local dgs, last = {dg}, split(h.rs)[1]
      if h.rc then dgs[#dgs + 1] = h.rc end
      if last then dgs[#dgs + 1] = last end
      tomb(dgs, reason .. '|' .. h.a, h.a)
    end
  end
  redis.call('HDEL', S, dg)
  redis.call('HDEL', I, h.id)
  redis.call('ZREM', U, um(h.u, dg))
  redis.call('ZREM', X, dg)
  drop_refresh(h)
end

-- Removes up to `n` sessions whose idle deadline passed more than `keep` ms ago (expired, not
-- revoked), so that sessions no sweeper removes cannot pile up: every login calls this.
local function collect(now, keep, n)
  for _, dg in ipairs(redis.call('ZRANGE', X, '-inf', '(' .. int(ms(now) - keep), 'BYSCORE', 'LIMIT', 0, n)) do
    local h = get(dg)
    if h then drop(dg, h, false, '', now) else redis.call('ZREM', X, dg) end
  end
end

-- The session with public id `id`, and its digest.
local function by_id(id)
  local dg = redis.call('HGET', I, id)
  if not dg then return nil, nil end
  local h = get(dg)
  if not h then
    redis.call('HDEL', I, id)
    return nil, nil
  end
  return h, dg
end
