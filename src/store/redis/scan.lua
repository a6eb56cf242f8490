-- scan: ARGV 3 where to start: which hash (0 sessions, 1 remembered revocations, 2 denylist
-- entries) and 4 its HSCAN cursor; 5 how many entries to aim for. Reads on, hash after hash,
-- until that many or the bucket's end, and answers where to go on (hash 3: the end) and the
-- entries read.
local at, cursor, want = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local out = {}
while at < 3 and #out < want do
  local kind, res
  if at == 0 then
    kind, res = 's', redis.call('HSCAN', S, cursor, 'COUNT', want)
  elseif at == 1 then
    kind, res = 'v', redis.call('HSCAN', V, cursor, 'COUNT', want)
  else
    kind, res = 'd', redis.call('HSCAN', D, cursor, 'COUNT', want)
  end
  local a = res[2]
  for k = 1, #a, 2 do
    if a[k] == '' then
      -- The bucket's placeholder (see next_seq).
    elseif kind == 's' then
      local h = decode(a[k + 1])
      out[#out + 1] = {'s', rec(h), h.rc or '', h.rs or ''}
    else
      -- A revocation's reason, or a denylist entry's scope (a reason or 'below:<generation>').
      local scope, till = parse(a[k + 1])
      out[#out + 1] = {kind, a[k], scope, till}
    end
  end
  cursor = res[1]
  if cursor == '0' then at = at + 1 end
end
return {at, cursor, out}
