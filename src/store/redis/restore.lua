-- restore: ARGV 3 reference time (TTLs are counted from it), 4 retention (ms), 5 mode ('check':
-- answer whether every item is new and write nothing; 'write': check, then write), then items
-- (all of one bucket, ARGV 1):
-- 's', id, digest, user, created, last seen, idle, absolute, remember-me, count, metadata, data,
--      current refresh digest or '', spent refresh digests (comma-separated), generation
--                                                                               (15 fields)
-- 'v', digest, reason, until                                                    (4 fields)
-- 'd', id, scope (reason or 'below:<generation>'), until, merged with the
--      session's entry                                                          (4 fields)
local ref, keep, mode = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local items = {}
local i = 6
while i <= #ARGV do
  if ARGV[i] == 's' then
    items[#items + 1] = {i, 's'}
    i = i + 15
  else
    items[#items + 1] = {i, ARGV[i]}
    i = i + 4
  end
end
-- All or nothing: check every key first, against the store and against the other items.
local seen = {}
local function fresh(key)
  if seen[key] or redis.call('EXISTS', key) > 0 then return false end
  seen[key] = true
  return true
end
for _, it in ipairs(items) do
  local j = it[1]
  if it[2] == 's' then
    if not fresh(B .. 's:' .. ARGV[j + 2]) or not fresh(B .. 'i:' .. ARGV[j + 1]) then return {'conflict'} end
    local refresh = split(ARGV[j + 13])
    if ARGV[j + 12] ~= '' then refresh[#refresh + 1] = ARGV[j + 12] end
    for _, r in ipairs(refresh) do
      if not fresh(B .. 'r:' .. r) then return {'conflict'} end
    end
  end
end
if mode == 'check' then return {'ok'} end
for _, it in ipairs(items) do
  local j = it[1]
  if it[2] == 's' then
    local h = {id = ARGV[j + 1], g = ARGV[j + 2], u = ARGV[j + 3], c = ARGV[j + 4], s = ARGV[j + 5],
      i = ARGV[j + 6], a = ARGV[j + 7], r = ARGV[j + 8], n = ARGV[j + 9], m = ARGV[j + 10], d = ARGV[j + 11],
      v = '0', q = redis.call('INCR', B .. 'q'), e = ARGV[j + 14]}
    if ARGV[j + 12] ~= '' then h.rc = ARGV[j + 12] end
    if ARGV[j + 13] ~= '' then h.rs = ARGV[j + 13] end
    create(h, ttl(h.a, ref) + keep)
  elseif it[2] == 'v' then
    redis.call('SET', B .. 'v:' .. ARGV[j + 1], ARGV[j + 2] .. '|' .. ARGV[j + 3], 'PX', int(ttl(ARGV[j + 3], ref)))
  else
    deny(ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ref)
  end
end
return {'ok'}
