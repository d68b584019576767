-- ARGV: prefix, seeker, partner, match id, now ms, cooldown ms, seeker info, partner info,
-- match ttl ms. Returns the users no longer claimed under the match (empty: confirmed).
local a, b, mid = ARGV[2], ARGV[3], ARGV[4]
local now, cd = tonumber(ARGV[5]), tonumber(ARGV[6])
local ia, ib, ttl = ARGV[7], ARGV[8], ARGV[9]
local out = {}
for _, u in ipairs({ a, b }) do
  local h = redis.call('HMGET', P .. ':t:' .. u, 'st', 'cid')
  if h[1] ~= 'c' or h[2] ~= mid then out[#out + 1] = u end
end
if #out > 0 then return out end
redis.call('DEL', P .. ':t:' .. a, P .. ':t:' .. b, P .. ':bl:' .. a, P .. ':bl:' .. b)
redis.call('ZREM', P .. ':claimed', a, b)
redis.call('SET', P .. ':m:' .. a, ia, 'PX', ttl)
redis.call('SET', P .. ':m:' .. b, ib, 'PX', ttl)
if cd > 0 then
  for _, pair in ipairs({ { a, b }, { b, a } }) do
    -- Ended cooldowns are never read (only scores after now are) and go with the key.
    local key = P .. ':rp:' .. pair[1]
    redis.call('ZADD', key, now + cd, pair[2])
    redis.call('PEXPIRE', key, cd)
  end
end
return out
