-- scan: ARGV 3 cursor, 4 count, 5 MATCH pattern (the key base, glob-escaped, then '*').
local res = redis.call('SCAN', ARGV[3], 'MATCH', ARGV[5], 'COUNT', tonumber(ARGV[4]))
local n = #B
local out = {}
for _, k in ipairs(res[2]) do
  local kind = string.sub(k, n + 1, n + 2)
  if kind == 's:' then
    local h = load(k)
    if h then out[#out + 1] = {'s', rec(h), h.rc or '', h.rs or ''} end
  elseif kind == 'v:' or kind == 'd:' then
    local v = redis.call('GET', k)
    if v then
      local reason, till = parse(v)
      out[#out + 1] = {string.sub(kind, 1, 1), string.sub(k, n + 3), reason, till}
    end
  end
end
return {res[1], out}
