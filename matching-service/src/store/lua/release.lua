-- ARGV: prefix, match id, now ms, block each other (0/1), seeker, partner.
-- Returns the users put back.
local mid, now, blk = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local a, b = ARGV[5], ARGV[6]
local out = {}
for _, pair in ipairs({ { a, b }, { b, a } }) do
  local u, o = pair[1], pair[2]
  local tkey = P .. ':t:' .. u
  local h = redis.call('HMGET', tkey, 'st', 'cid', 'm', 'j0')
  if h[1] == 'c' and h[2] == mid then
    local m = h[3]
    if blk == '1' then
      redis.call('SADD', P .. ':bl:' .. u, o)
      m = string.sub(m, 1, 31) .. '\1' .. string.sub(m, 33)
    end
    redis.call('HSET', tkey, 'st', 'w', 'cid', '', 'm', m)
    index(m, tonumber(h[4]))
    redis.call('ZADD', P .. ':due', now, u)
    redis.call('ZREM', P .. ':claimed', u)
    out[#out + 1] = u
  end
end
return out
