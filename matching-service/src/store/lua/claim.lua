-- ARGV: prefix, seeker, match id, now ms, recheck ms, interest scan, merge scan.
-- Returns false, or {partner, seeker json, seeker joined, partner json, partner joined, shared}.
local shex, mid = ARGV[2], ARGV[3]
local now, recheck = tonumber(ARGV[4]), tonumber(ARGV[5])
local iscan, mscan = tonumber(ARGV[6]), tonumber(ARGV[7])
local tkey = P .. ':t:' .. shex
local h = redis.call('HMGET', tkey, 'm', 'st', 'j0')
if not h[1] or h[2] ~= 'w' then return false end
local sm = h[1]
local S = parse(sm, tonumber(h[3]), now)
local sraw = string.sub(sm, 1, 16)
local sids, slist = {}, {}
for k = 1, S.n do
  local id = iid(sm, k)
  sids[id] = true
  slist[k] = id
end
local recent = {}
for _, p in ipairs(redis.call('ZRANGEBYSCORE', P .. ':rp:' .. shex, '(' .. now, '+inf')) do
  recent[p] = true
end
local blocked = {}
if S.blk == 1 then
  for _, b in ipairs(redis.call('SMEMBERS', P .. ':bl:' .. shex)) do blocked[b] = true end
end

local function check(cm, cs)
  local craw = string.sub(cm, 1, 16)
  if craw == sraw then return nil end
  local C = parse(cm, cs, now)
  if bit.band(S.mask, bit.lshift(1, C.g)) == 0 or bit.band(C.mask, bit.lshift(1, S.g)) == 0 then
    return nil
  end
  if C.age < S.lo or C.age > S.hi or S.age < C.lo or S.age > C.hi then return nil end
  local shared = 0
  for k = 1, C.n do
    if sids[iid(cm, k)] then shared = shared + 1 end
  end
  if shared == 0 and (S.mode == 0 or C.mode == 0) then return nil end
  local chex = tohex(craw)
  if recent[chex] or blocked[chex] then return nil end
  if C.blk == 1 and redis.call('SISMEMBER', P .. ':bl:' .. chex, shex) == 1 then return nil end
  return shared, chex
end

local sw = wanted(S.mask)
local pick_m, pick_s, pick_hex, pick_sh
if S.mode ~= 2 and S.n > 0 then
  local seen = {}
  for k = 1, S.n do
    for _, g in ipairs(sw) do
      local r = redis.call('ZRANGE', P .. ':i:' .. slist[k] .. ':' .. g .. S.g, 0, iscan - 1, 'WITHSCORES')
      for j = 1, #r, 2 do
        local cm = r[j]
        if string.sub(cm, 1, 16) ~= sraw and not seen[cm] then
          seen[cm] = true
          local cs = tonumber(r[j + 1])
          local sh, chex = check(cm, cs)
          if sh and ((not pick_m and sh > 0)
              or (pick_m and (sh > pick_sh or (sh == pick_sh and cs < pick_s)))) then
            pick_m, pick_s, pick_hex, pick_sh = cm, cs, chex, sh
          end
        end
      end
    end
  end
end

if not pick_m then
  local B = 8
  local heads = {}
  for _, g in ipairs(sw) do
    for age = S.lo, S.hi do
      local key = P .. ':b:' .. g .. S.g .. ':' .. age
      local r = redis.call('ZRANGE', key, 0, B - 1, 'WITHSCORES')
      if #r > 0 then heads[#heads + 1] = { key = key, r = r, i = 1, off = 0 } end
    end
  end
  for _ = 1, mscan do
    local bi, bs
    for idx, hd in ipairs(heads) do
      if hd.r then
        local sc = tonumber(hd.r[hd.i + 1])
        if not bi or sc < bs then bi, bs = idx, sc end
      end
    end
    if not bi then break end
    local hd = heads[bi]
    local cm = hd.r[hd.i]
    hd.i = hd.i + 2
    if hd.i > #hd.r then
      if #hd.r < 2 * B then
        hd.r = nil
      else
        hd.off = hd.off + B
        local r = redis.call('ZRANGE', hd.key, hd.off, hd.off + B - 1, 'WITHSCORES')
        if #r > 0 then hd.r, hd.i = r, 1 else hd.r = nil end
      end
    end
    local sh, chex = check(cm, bs)
    if sh then
      pick_m, pick_s, pick_hex, pick_sh = cm, bs, chex, sh
      break
    end
  end
end

if not pick_m then
  local nxt = now + recheck
  local steps = math.floor(S.waited / S.we)
  if steps < S.wy then
    local t = S.joined + (steps + 1) * S.we * 1000
    if t < nxt then nxt = t end
  end
  if S.mode0 == 0 and S.fb ~= 4294967295 and S.waited < S.fb then
    local t = S.joined + S.fb * 1000
    if t < nxt then nxt = t end
  end
  redis.call('ZADD', P .. ':due', nxt, shex)
  return false
end

local ptkey = P .. ':t:' .. pick_hex
unindex(sm)
unindex(pick_m)
redis.call('ZREM', P .. ':due', shex, pick_hex)
redis.call('HSET', tkey, 'st', 'c', 'cid', mid)
redis.call('HSET', ptkey, 'st', 'c', 'cid', mid)
redis.call('ZADD', P .. ':claimed', now, shex, now, pick_hex)
return { pick_hex, redis.call('HGET', tkey, 'j'), h[3],
  redis.call('HGET', ptkey, 'j'), redis.call('HGET', ptkey, 'j0'), pick_sh }
