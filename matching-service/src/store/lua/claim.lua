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
-- A ticket in low standing searches only once its hold is over.
if S.low == 1 and S.waited < S.hold then
  redis.call('ZADD', P .. ':due', S.joined + S.hold * 1000, shex)
  return false
end
local pool = pool_of(sm)
local sraw = string.sub(sm, 1, 16)
local sids, slist = {}, {}
for k = 1, S.n do
  local id = iid(sm, k)
  sids[id] = true
  slist[k] = id
end
-- Recent partners and blocks, keyed by the raw 16-byte id found in index members.
local function raw_of(hex)
  return (string.gsub(string.gsub(hex, '-', ''), '..',
    function(x) return string.char(tonumber(x, 16)) end))
end
local recent = {}
for _, p in ipairs(redis.call('ZRANGEBYSCORE', P .. ':rp:' .. shex, '(' .. now, '+inf')) do
  recent[raw_of(p)] = true
end
local blocked = {}
if S.blk == 1 then
  for _, b in ipairs(redis.call('SMEMBERS', P .. ':bl:' .. shex)) do blocked[raw_of(b)] = true end
end
local swants = {}
for g = 0, 2 do swants[g] = bit.band(S.mask, bit.lshift(1, g)) ~= 0 end
local sbit = bit.lshift(1, S.g)

-- `parse` and the rule of `rules.rs`, inlined with the cheapest tests first: most
-- candidates are refused on a byte or two, without building a table.
local function check(cm, cs)
  local craw = string.sub(cm, 1, 16)
  if craw == sraw or recent[craw] or blocked[craw] then return nil end
  local cg, cage, cmn, cmx, cwy = string.byte(cm, 17, 21)
  if cage < S.lo or cage > S.hi or not swants[cg] then return nil end
  local cmask, cblk, clow = string.byte(cm, 31, 33)
  if bit.band(cmask, sbit) == 0 or clow ~= S.low then return nil end
  local cn = string.byte(cm, 38)
  local waited = 0
  if now > cs then waited = math.floor((now - cs) / 1000) end
  if clow == 1 and waited < u32(cm, 34) then return nil end
  local we = u32(cm, 22)
  if we < 1 then we = 1 end
  local w = math.floor(waited / we)
  if w > cwy then w = cwy end
  local lo, hi = cmn - w, cmx + w
  if lo < 18 then lo = 18 end
  if hi > 120 then hi = 120 end
  if S.age < lo or S.age > hi then return nil end
  local shared = 0
  for k = 1, cn do
    if sids[iid(cm, k)] then shared = shared + 1 end
  end
  if shared == 0 then
    if S.mode == 0 then return nil end
    if string.byte(cm, 26) == 0 then
      local fb = u32(cm, 27)
      if fb == 4294967295 or waited < fb then return nil end
    end
  end
  if cblk == 1 and redis.call('SISMEMBER', P .. ':bl:' .. tohex(craw), shex) == 1 then
    return nil
  end
  return shared
end

local sw = wanted(S.mask)
local pick_m, pick_s, pick_sh
if S.mode ~= 2 and S.n > 0 then
  local seen = {}
  for k = 1, S.n do
    for _, g in ipairs(sw) do
      local r = redis.call('ZRANGE', pool .. ':i:' .. slist[k] .. ':' .. g .. S.g, 0, iscan - 1, 'WITHSCORES')
      for j = 1, #r, 2 do
        local cm = r[j]
        if string.sub(cm, 1, 16) ~= sraw and not seen[cm] then
          seen[cm] = true
          local cs = tonumber(r[j + 1])
          local sh = check(cm, cs)
          if sh and ((not pick_m and sh > 0)
              or (pick_m and (sh > pick_sh or (sh == pick_sh and cs < pick_s)))) then
            pick_m, pick_s, pick_sh = cm, cs, sh
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
    for band = math.floor(S.lo / BAND), math.floor(S.hi / BAND) do
      local key = pool .. ':b:' .. g .. S.g .. ':' .. band
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
    local sh = check(cm, bs)
    if sh then
      pick_m, pick_s, pick_sh = cm, bs, sh
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

local pick_hex = tohex(string.sub(pick_m, 1, 16))
local ptkey = P .. ':t:' .. pick_hex
unindex(sm)
unindex(pick_m)
redis.call('ZREM', P .. ':due', shex, pick_hex)
redis.call('HSET', tkey, 'st', 'c', 'cid', mid)
redis.call('HSET', ptkey, 'st', 'c', 'cid', mid)
redis.call('ZADD', P .. ':claimed', now, shex, now, pick_hex)
local pj = redis.call('HMGET', ptkey, 'j', 'j0')
return { pick_hex, redis.call('HGET', tkey, 'j'), h[3], pj[1], pj[2], pick_sh }
