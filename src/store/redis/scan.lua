-- scan: ARGV 3 cursor, 4 count, 5 MATCH pattern (every bucket's keys). ARGV 1 is unused: a
-- key's kind and name follow its bucket's tag ("<prefix>:{b<n>}:<kind>:<name>").
local res = redis.call('SCAN', ARGV[3], 'MATCH', ARGV[5], 'COUNT', tonumber(ARGV[4]))
local out = {}
for _, k in ipairs(res[2]) do
  local p = string.find(k, '}:', 1, true)
  if p then
    local kind = string.sub(k, p + 2, p + 3)
    if kind == 's:' then
      local h = get(k)
      if h then out[#out + 1] = {'s', rec(h), h.rc or '', h.rs or ''} end
    elseif kind == 'v:' or kind == 'd:' then
      local v = redis.call('GET', k)
      if v then
        -- A revocation's reason, or a denylist entry's scope (a reason or 'below:<generation>').
        local scope, till = parse(v)
        out[#out + 1] = {string.sub(kind, 1, 1), string.sub(k, p + 4), scope, till}
      end
    end
  end
end
return {res[1], out}
