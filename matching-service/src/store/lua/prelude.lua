-- Shared by every script: ARGV[1] is the key prefix (a hash tag, so that all keys of one
-- queue live in one Redis Cluster slot). A ticket's index member is a binary string:
--   1-16 user id, 17 gender, 18 age, 19 min age, 20 max age, 21 widen years,
--   22-25 seconds per widening step, 26 interest mode (0 required, 1 preferred,
--   2 ignored), 27-30 fallback seconds (0xFFFFFFFF never), 31 wanted-gender mask,
--   32 has-blocks flag, 33 low-standing flag, 34-37 hold seconds (low standing),
--   38 interest count, then 3 bytes per interest id.
-- The rules mirror `rules.rs`; the search mirrors `memory.rs`.
local P = ARGV[1]
-- Years of age per bucket (`store::AGE_BAND`).
local BAND = 5

local function tohex(raw)
  return string.format(
    '%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x',
    string.byte(raw, 1, 16))
end

local function u32(m, i)
  local a, b, c, d = string.byte(m, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function iid(m, k)
  local a, b, c = string.byte(m, 36 + 3 * k, 38 + 3 * k)
  return (a * 256 + b) * 256 + c
end

-- The key prefix of the pool a member's indexes live in: tickets in low standing have
-- their own (`rules::LowStanding`).
local function pool_of(m)
  if string.byte(m, 33) == 1 then return P .. ':l' end
  return P
end

local function wanted(mask)
  local out = {}
  for g = 0, 2 do
    if bit.band(mask, bit.lshift(1, g)) ~= 0 then out[#out + 1] = g end
  end
  return out
end

local function parse(m, joined, now)
  local g, age, mn, mx, wy = string.byte(m, 17, 21)
  local we = u32(m, 22)
  local mode0 = string.byte(m, 26)
  local fb = u32(m, 27)
  local mask, blk = string.byte(m, 31, 32)
  local low, n = string.byte(m, 33), string.byte(m, 38)
  local hold = u32(m, 34)
  if we < 1 then we = 1 end
  local waited = 0
  if now > joined then waited = math.floor((now - joined) / 1000) end
  local w = math.floor(waited / we)
  if w > wy then w = wy end
  local lo = mn - w
  if lo < 18 then lo = 18 end
  local hi = mx + w
  if hi > 120 then hi = 120 end
  local mode = mode0
  if mode == 0 and fb ~= 4294967295 and waited >= fb then mode = 1 end
  return { g = g, age = age, lo = lo, hi = hi, mode = mode, mode0 = mode0, mask = mask,
    blk = blk, n = n, waited = waited, we = we, wy = wy, fb = fb, joined = joined,
    low = low, hold = hold }
end

local function keys_of(m)
  local g, age = string.byte(m, 17, 18)
  local mask, n = string.byte(m, 31), string.byte(m, 38)
  local pool = pool_of(m)
  local ks = {}
  for _, x in ipairs(wanted(mask)) do
    ks[#ks + 1] = pool .. ':b:' .. g .. x .. ':' .. math.floor(age / BAND)
    for k = 1, n do ks[#ks + 1] = pool .. ':i:' .. iid(m, k) .. ':' .. g .. x end
  end
  return ks
end

local function index(m, score)
  for _, k in ipairs(keys_of(m)) do redis.call('ZADD', k, score, m) end
  redis.call('ZADD', P .. ':q', score, tohex(string.sub(m, 1, 16)))
end

local function unindex(m)
  for _, k in ipairs(keys_of(m)) do redis.call('ZREM', k, m) end
  redis.call('ZREM', P .. ':q', tohex(string.sub(m, 1, 16)))
end
