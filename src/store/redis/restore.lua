-- restore: ARGV 3 reference time (entries over by then are skipped), 4 mode ('check': answer
-- whether every item is new and write nothing; 'write': check, then write), then items (all
-- of one bucket):
-- 's', id, digest, user, created, last seen, idle, absolute, remember-me, count, metadata, data,
--      current refresh digest or '', spent refresh digests (comma-separated), generation
--                                                                               (15 fields)
-- 'v', digest, reason, until                                                    (4 fields)
-- 'd', id, scope (reason or 'below:<generation>'), until, merged with the
--      session's entry                                                          (4 fields)
local ref, mode = ARGV[3], ARGV[4]
local items = {}
local i = 5
while i <= #ARGV do
  if ARGV[i] == 's' then
    items[#items + 1] = {i, 's'}
    i = i + 15
  else
    items[#items + 1] = {i, ARGV[i]}
    i = i + 4
  end
end
-- All or nothing: check every entry first, against the store and against the other items.
local seen = {}
-- Whether entry `name` of hash `kind` is new, to the store (`stored`: HEXISTS's answer) and to
-- the items before.
local function fresh(kind, name, stored)
  if stored == 1 or seen[kind .. name] then return false end
  seen[kind .. name] = true
  return true
end
for _, it in ipairs(items) do
  local j = it[1]
  if it[2] == 's' then
    local dg, id = ARGV[j + 2], ARGV[j + 1]
    if not fresh('s', dg, redis.call('HEXISTS', S, dg)) or not fresh('i', id, redis.call('HEXISTS', I, id)) then
      return {'conflict'}
    end
    local refresh = split(ARGV[j + 13])
    if ARGV[j + 12] ~= '' then refresh[#refresh + 1] = ARGV[j + 12] end
    for _, r in ipairs(refresh) do
      if not fresh('r', r, redis.call('HEXISTS', R, r)) then return {'conflict'} end
    end
  end
end
if mode == 'check' then return {'ok'} end
for _, it in ipairs(items) do
  local j = it[1]
  if it[2] == 's' then
    local h = {id = ARGV[j + 1], g = ARGV[j + 2], u = ARGV[j + 3], c = ARGV[j + 4], s = ARGV[j + 5],
      i = ARGV[j + 6], a = ARGV[j + 7], r = ARGV[j + 8], n = ARGV[j + 9], m = ARGV[j + 10], d = ARGV[j + 11],
      v = '0', q = next_seq(), e = ARGV[j + 14]}
    if ARGV[j + 12] ~= '' then h.rc = ARGV[j + 12] end
    if ARGV[j + 13] ~= '' then h.rs = ARGV[j + 13] end
    create(h)
  elseif it[2] == 'v' then
    if ARGV[j + 3] > ref then tomb({ARGV[j + 1]}, ARGV[j + 2] .. '|' .. ARGV[j + 3], ARGV[j + 3]) end
  else
    deny(ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ref)
  end
end
return {'ok'}
